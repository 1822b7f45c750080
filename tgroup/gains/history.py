"""Gains over training steps: how early the ranking of transfer settles.

Lazy collection (``collect_every``) and short collection runs rely on the
ordering of the gains settling early in training. A collection run records the
running means of every measure at about :data:`POINTS` evenly spaced steps (a
host copy of two m×m arrays there, nothing per step); this module holds them and
measures, per snapshot, how far the ordering already is from the final one:

- the Spearman rank correlation of the off-diagonal gains with the final ones;
- the fraction of target tasks whose best source task is already the final one.

Pure NumPy (no JAX): files are read and plotted without the model side.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from tgroup import io
from tgroup.errors import UserError
from tgroup.stats import spearman

POINTS = 20
"""Snapshots per collection run (fewer when it has fewer steps)."""

STABLE_CORRELATION = 0.9
"""The rank correlation above which the ordering counts as settled."""


def snapshot_steps(steps: int, points: int = POINTS) -> list[int]:
  """Steps (counted from 1, after that many updates) at which the means are recorded.

  ``min(steps, points)`` steps as evenly spaced as integers allow, the last one
  the end of the run.

  Examples:
    >>> snapshot_steps(2000)[:3], len(snapshot_steps(2000)), snapshot_steps(2000)[-1]
    ([100, 200, 300], 20, 2000)
    >>> snapshot_steps(7, points=3)
    [2, 4, 7]
  """
  return sorted({k * steps // points for k in range(1, points + 1)} - {0})


@dataclasses.dataclass(frozen=True, eq=False)
class GainsHistory:
  """A measure's running means at several steps of one collection run.

  Attributes:
    tasks: task names, the order of both matrix axes.
    measure: the measure's name (as in ``gains.json``).
    steps: ``(p,)`` training steps of the snapshots, increasing; the last is
      the end of the run, so the last snapshot is the final gains.
    gains: ``(p, m, m)`` means over the steps collected so far (``[k, i, j]``:
      what j receives from i at snapshot k; 0 where never collected).
    counts: ``(p, m, m)`` how many steps contributed to each entry.

  Examples:
    >>> final = np.array([[0, 3, 1], [2, 0, 4], [5, 6, 0]], float)
    >>> h = GainsHistory(("a", "b", "c"), "tag", np.array([10, 20, 30]),
    ...                  np.stack([-final, 2 * final, final]), np.ones((3, 3, 3)))
    >>> h.rank_correlation().tolist(), h.best_source_agreement().tolist()
    ([-1.0, 1.0, 1.0], [0.0, 1.0, 1.0])
    >>> h.stable_step()
    20
  """
  tasks: tuple[str, ...]
  measure: str
  steps: np.ndarray
  gains: np.ndarray
  counts: np.ndarray

  def rank_correlation(self) -> np.ndarray:
    """``(p,)`` Spearman correlation of each snapshot's off-diagonal gains with the final ones.

    Over the entries collected both then and at the end; NaN where fewer than
    two such entries exist or either side is constant.
    """
    final, final_counts = self.gains[-1], self.counts[-1]
    off = ~np.eye(len(self.tasks), dtype=bool)
    out = np.full(len(self.steps), np.nan)
    for k, (g, c) in enumerate(zip(self.gains, self.counts)):
      keep = off & (c > 0) & (final_counts > 0)
      if keep.sum() >= 2:
        out[k] = spearman(g[keep], final[keep])
    return out

  def best_source_agreement(self) -> np.ndarray:
    """``(p,)`` fraction of target tasks whose best other source is already the final one.

    A target (column j) counts when the collected source i ≠ j with the largest
    gain onto j is the one with the largest final gain (a tie counts if the
    final best is among the tied).
    """
    best = [self._best_sources(g, c) for g, c in zip(self.gains, self.counts)]
    final = best[-1]
    targets = [j for j in range(len(self.tasks)) if final[j]]
    if not targets:
      return np.full(len(self.steps), np.nan)
    return np.array([np.mean([bool(b[j] & final[j]) for j in targets]) for b in best])

  def stable_step(self, threshold: float = STABLE_CORRELATION) -> int | None:
    """The first snapshot step from which the rank correlation stays ``>= threshold``.

    None when the final gains have no ordering to settle on (all off-diagonal
    entries equal, or fewer than two collected).
    """
    rho = self.rank_correlation()
    if np.isnan(rho[-1]):
      return None
    above = np.nan_to_num(rho, nan=-np.inf) >= threshold
    # The last snapshot is the final gains (correlation 1), so a settled tail exists.
    first = len(above) - int(np.argmin(above[::-1])) if not above.all() else 0
    return int(self.steps[first])

  def _best_sources(self, g: np.ndarray, c: np.ndarray) -> list[set[int]]:
    m = len(self.tasks)
    out = []
    for j in range(m):
      sources = [i for i in range(m) if i != j and c[i, j] > 0]
      top = max((g[i, j] for i in sources), default=None)
      out.append({i for i in sources if g[i, j] == top})
    return out

  def to_json(self) -> dict:
    rho, agree = self.rank_correlation(), self.best_source_agreement()
    return {"measure": self.measure, "tasks": list(self.tasks),
            "steps": [int(s) for s in self.steps],
            "gains": np.asarray(self.gains, float).tolist(),
            "counts": np.asarray(self.counts).astype(int).tolist(),
            # Derived, for readers without this module; recomputed on load.
            "rank_correlation": [io.finite_or_none(x) for x in rho],
            "best_source_agreement": [io.finite_or_none(x) for x in agree],
            "stable_correlation": STABLE_CORRELATION,
            "stable_step": self.stable_step()}

  @classmethod
  def from_json(cls, obj: Any, source: str = "gains history") -> "GainsHistory":
    try:
      tasks = tuple(obj["tasks"])
      steps = np.asarray(obj["steps"], int)
      gains = np.asarray(obj["gains"], float)
      counts = np.asarray(obj["counts"], int)
      measure = str(obj["measure"])
    except (KeyError, TypeError, ValueError) as e:
      raise UserError(f"{source}: not a gains history ({type(e).__name__}: {e})") from None
    m, p = len(tasks), len(steps)
    if gains.shape != (p, m, m) or counts.shape != (p, m, m) or p == 0:
      raise UserError(f"{source}: {measure} history must hold {p} matrices of {m}x{m} gains "
                      f"and counts, got {gains.shape} and {counts.shape}")
    return cls(tasks, measure, steps, gains, counts)


def save_histories(path: str, histories: Sequence[GainsHistory], **extra) -> None:
  """Writes ``{measure: history, ...}`` (plus JSON-able ``extra`` keys) atomically."""
  io.write_json(path, {**extra, "measures": {h.measure: h.to_json() for h in histories}})


def load_histories(path: str) -> tuple[dict[str, GainsHistory], dict]:
  """``({measure: history}, the file's other keys)`` of a :func:`save_histories` file."""
  obj = io.read_json(path)
  if not isinstance(obj, dict) or not isinstance(obj.get("measures"), dict):
    raise UserError(f"{path}: expected an object with 'measures'")
  rest = {k: v for k, v in obj.items() if k != "measures"}
  return {name: GainsHistory.from_json(h, f"{path}: {name}")
          for name, h in obj["measures"].items()}, rest
