"""``Gains``: an m×m transfer matrix with per-entry counts, and its JSON file (DESIGN §6)."""
from __future__ import annotations

import dataclasses
import math
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
  def from_json(cls, obj: Any, source: str = "gains") -> "Gains":
    """Parses and validates the contract; every problem is a one-line UserError."""
    if not isinstance(obj, dict):
      raise UserError(f"{source}: expected a JSON object with tasks and gains")
    tasks = obj.get("tasks")
    if (not isinstance(tasks, list) or not tasks
        or not all(isinstance(t, str) for t in tasks)):
      raise UserError(f"{source}: 'tasks' must be a non-empty list of names")
    if len(set(tasks)) != len(tasks):
      raise UserError(f"{source}: task names repeat: {tasks}")
    m = len(tasks)
    gains = _matrix(obj.get("gains"), m, f"{source}: 'gains'")
    bad = [(i, j) for i in range(m) for j in range(m) if not math.isfinite(gains[i, j])]
    if bad:
      i, j = bad[0]
      raise UserError(f"{source}: gains[{i}][{j}] ({tasks[i]} -> {tasks[j]}) is not finite")
    counts = obj.get("counts")
    counts = (np.ones((m, m), int) if counts is None
              else _matrix(counts, m, f"{source}: 'counts'").astype(int))
    settings = obj.get("settings", {})
    if not isinstance(settings, dict):
      raise UserError(f"{source}: 'settings' must be an object")
    return cls(tuple(tasks), str(obj.get("measure", "unknown")), gains, counts, settings)

  def save(self, path: str) -> None:
    io.write_json(path, self.to_json())

  @classmethod
  def load(cls, path: str) -> "Gains":
    return cls.from_json(io.read_json(path), source=path)


def _matrix(rows, m: int, where: str) -> np.ndarray:
  if (not isinstance(rows, list) or len(rows) != m
      or not all(isinstance(r, list) and len(r) == m for r in rows)):
    raise UserError(f"{where} must be a {m}x{m} list of lists (one row per task)")
  try:
    return np.array(rows, dtype=float)
  except (TypeError, ValueError):
    raise UserError(f"{where} must hold numbers") from None
