"""``Gains``: an m×m transfer matrix with per-entry counts, and its JSON file (docs/contract.md)."""
from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from tgroup import io
from tgroup.errors import UserError


@dataclasses.dataclass(frozen=True, eq=False)
class Gains:
  """``gains[i, j]`` is what task j receives from task i (source i, target j).

  Attributes:
    tasks: task names, the order of both axes.
    measure: e.g. ``principled``, ``principled_marginal``, ``tag``.
    gains: ``(m, m)`` mean over the steps at which each entry was collected.
    counts: ``(m, m)`` how many steps contributed to each entry.
    settings: how the gains were collected (free-form, JSON-serialisable).

  Examples:
    >>> g = Gains(("a", "b"), "tag", np.array([[0.1, 0.2], [0.3, 0.4]]), np.ones((2, 2)), {})
    >>> float(Gains.from_json(g.to_json()).gains[1, 0])
    0.3
  """
  tasks: tuple[str, ...]
  measure: str
  gains: np.ndarray
  counts: np.ndarray
  settings: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    return {"tasks": list(self.tasks), "measure": self.measure,
            "gains": np.asarray(self.gains, float).tolist(),
            "counts": np.asarray(self.counts).astype(int).tolist(), "settings": self.settings}

  @classmethod
  def from_json(cls, obj: Any, source: str = "gains",
                where: Callable[[tuple[str | int, ...]], str] | None = None) -> "Gains":
    """Parses and validates the contract; every problem is a one-line UserError.

    Also reads TAG's released affinity files (same orientation, a "kind" instead
    of a "measure", no counts). Missing counts read as 1.

    Args:
      obj: the parsed JSON.
      source: the file's name, for messages.
      where: ``keys -> "file:line"`` of the value at a JSON path (see
        :func:`tgroup.io.read_json_located`), so a message names the line;
        None: messages name `source` only.

    Examples:
      >>> Gains.from_json({"tasks": ["a", "b"], "gains": [[0, 1], [float("nan"), 0]]},
      ...                 source="g.json")
      Traceback (most recent call last):
      ...
      tgroup.errors.UserError: g.json: gains[1][0] (b -> a) is not finite
    """
    at = where or (lambda keys: source)
    if not isinstance(obj, dict):
      raise UserError(f"{at(())}: expected a JSON object with 'tasks' and 'gains'")
    tasks = obj.get("tasks")
    if (not isinstance(tasks, list) or not tasks
        or not all(isinstance(t, str) and t for t in tasks)):
      raise UserError(f"{at(('tasks',))}: 'tasks' must be a non-empty list of task names")
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
      raise UserError(f"{at(('tasks',))}: task names repeat: {', '.join(repeated)}")
    if "gains" not in obj:
      hint = (" (a 'table' of pairwise results is HOA's input, not gains)"
              if "table" in obj else "")
      raise UserError(f"{at(())}: no 'gains' matrix{hint}")
    m = len(tasks)
    gains = _matrix(obj["gains"], m, "gains", at)
    bad = np.argwhere(~np.isfinite(gains))
    if len(bad):
      i, j = bad[0]
      raise UserError(f"{at(('gains', int(i), int(j)))}: gains[{i}][{j}] "
                      f"({tasks[i]} -> {tasks[j]}) is not finite")
    # Group scores sum up to m gains; finite entries can still overflow that sum.
    if np.abs(gains).max() > np.finfo(np.float64).max / m:
      raise UserError(f"{at(('gains',))}: gains overflow float64 when summed over {m} tasks; "
                      "rescale them")
    counts = np.ones((m, m), int)
    if obj.get("counts") is not None:
      counts = _matrix(obj["counts"], m, "counts", at)
      bad = np.argwhere(~(np.isfinite(counts) & (counts >= 0)))
      if len(bad):
        i, j = bad[0]
        raise UserError(f"{at(('counts', int(i), int(j)))}: counts must be finite and >= 0, "
                        f"counts[{i}][{j}] is {counts[i, j]:g}")
      counts = counts.astype(int)
    measure = obj.get("measure", obj.get("kind", "unknown"))
    if not isinstance(measure, str):
      key = "measure" if "measure" in obj else "kind"
      raise UserError(f"{at((key,))}: '{key}' must be a string, got {json.dumps(measure)}")
    settings = obj.get("settings", {})
    if not isinstance(settings, dict):
      raise UserError(f"{at(('settings',))}: 'settings' must be an object")
    return cls(tuple(tasks), measure, gains, counts, settings)

  def save(self, path: str) -> None:
    io.write_json(path, self.to_json())

  @classmethod
  def load(cls, path: str) -> "Gains":
    """Reads a gains file; a problem is a one-line UserError naming the file and line."""
    obj, where = io.read_json_located(path)
    return cls.from_json(obj, source=path, where=where)


def _matrix(rows: Any, m: int, key: str,
            at: Callable[[tuple[str | int, ...]], str]) -> np.ndarray:
  """An m×m list of lists of numbers as float64, or a UserError saying where."""
  if not isinstance(rows, list) or len(rows) != m:
    got = f"{len(rows)} rows" if isinstance(rows, list) else type(rows).__name__
    raise UserError(f"{at((key,))}: {key} must be {m}x{m} (one row per task), got {got}")
  for i, row in enumerate(rows):
    if not isinstance(row, list) or len(row) != m:
      got = f"{len(row)} entries" if isinstance(row, list) else type(row).__name__
      raise UserError(f"{at((key, i))}: {key} must be {m}x{m}: row {i} has {got}, "
                      f"expected {m}")
    for j, x in enumerate(row):
      # JSON true/false arrive as bool, an int subclass: a gain of `true` is a typo.
      if not isinstance(x, numbers.Real) or isinstance(x, bool):
        raise UserError(f"{at((key, i, j))}: {key}[{i}][{j}] is {json.dumps(x)}, not a number")
  try:
    return np.array(rows, dtype=np.float64)
  except OverflowError:
    # JSON integers are unbounded; one beyond float64 cannot be a gain.
    raise UserError(f"{at((key,))}: {key} holds an integer too large for float64") from None
