"""Resource limits on the chosen networks: a total budget, per-network caps, half-size networks.

A user deploying several networks has a memory, compute or latency budget, not
a number of groups. :class:`Budget` carries what the MIP needs to respect one:
the cost of any group's network (a callable, so costs can be measured by XLA,
see :mod:`tgroup.costs`, or read from a file), the total the chosen networks may
cost, a cap on any single network, and whether half-size single-task networks
(Standley et al.) may be chosen. Pure Python: no JAX here.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Callable, Mapping, Sequence

import numpy as np

from tgroup.errors import UserError

# What a network's cost can count (measured by tgroup.costs; uniform: 1 each).
COST_MODELS = ("flops", "memory", "params", "uniform")

# Limit name (as the flags spell it) -> Budget field.
_LIMITS = {"budget": "total", "max_network_cost": "max_network_cost"}

# (task indices of the group, sorted; half_size) -> the network's cost.
CostFn = Callable[[tuple[int, ...], bool], float]


def check_cost_model(cost_model: str) -> str:
  if cost_model not in COST_MODELS:
    raise UserError(f"unknown cost model {cost_model!r}; valid: {', '.join(COST_MODELS)}")
  return cost_model


def _limit(name: str, value) -> float | None:
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
      math.isfinite(float(value)) and value >= 0):
    raise UserError(f"{name} must be a finite number >= 0, got {value!r}")
  return float(value)


@dataclasses.dataclass(frozen=True)
class Budget:
  """Costs of networks and the limits on them.

  Attributes:
    cost: ``cost(group, half_size) -> float``, the cost of the network serving
      the sorted task-index tuple ``group`` (half-size asked only of singletons).
    total: the chosen networks' costs sum to at most this; None: no total.
    max_network_cost: every chosen network costs at most this; None: no cap.
    allow_half_size: singletons may also be served by a half-size network
      (scored like the full one: gains say nothing about width, so a half-size
      network is only ever chosen to save cost).
    cost_model: what the costs count, for messages and reports (e.g. "flops").

  Examples:
    >>> b = Budget(cost=lambda g, half: len(g) + (0.5 if half else 1.0), total=3.0)
    >>> b.costs([(0,), (0, 1)], [True, False]).tolist()
    [1.5, 3.0]
    >>> b.active(), b.describe("budget")
    (('budget',), 'budget=3 (cost)')
  """
  cost: CostFn
  total: float | None = None
  max_network_cost: float | None = None
  allow_half_size: bool = False
  cost_model: str = "cost"

  def __post_init__(self):
    if not callable(self.cost):
      raise UserError("Budget.cost must be a callable (group, half_size) -> cost")
    object.__setattr__(self, "total", _limit("budget", self.total))
    object.__setattr__(self, "max_network_cost",
                       _limit("max_network_cost", self.max_network_cost))

  def costs(self, groups: Sequence[Sequence[int]], half_size: Sequence[bool]) -> np.ndarray:
    """The cost of each group's network, checked finite and non-negative."""
    out = np.array([float(self.cost(tuple(sorted(int(t) for t in g)), bool(h)))
                    for g, h in zip(groups, half_size)], dtype=np.float64)
    bad = ~(np.isfinite(out) & (out >= 0))
    if bad.any():
      k = int(np.flatnonzero(bad)[0])
      raise UserError(f"the cost of network {sorted(groups[k])} is {out[k]}; costs must be "
                      "finite and >= 0")
    return out

  def active(self) -> tuple[str, ...]:
    """The limits in force, by their flag names (``budget``, ``max_network_cost``)."""
    return tuple(name for name, field in _LIMITS.items() if getattr(self, field) is not None)

  def relaxed(self, name: str) -> Budget:
    """This budget without the named limit."""
    if name not in _LIMITS:
      raise ValueError(f"unknown budget limit {name!r}")
    return dataclasses.replace(self, **{_LIMITS[name]: None})

  def describe(self, name: str) -> str:
    return f"{name}={getattr(self, _LIMITS[name]):g} ({self.cost_model})"

  def to_json(self) -> dict:
    return {"budget": self.total, "max_network_cost": self.max_network_cost,
            "allow_half_size": self.allow_half_size, "cost_model": self.cost_model}


def costs_from_json(path: str, tasks: Sequence[str],
                    groups: Sequence[Sequence[int]],
                    half_size: Sequence[bool] | None = None) -> np.ndarray:
  """Network costs a user wrote down, for the given task-index groups.

  The file holds ``{"base": b, "per_task": {task: c, ...}}`` (a network costs
  ``b`` plus the sum of its tasks' costs; ``base`` defaults to 0) and/or
  ``{"groups": [{"tasks": [names], "cost": c}, ...]}``, whose entries win for
  exactly those groups. Every group must get a cost one way or the other.
  Half-size single-task networks (``half_size[k]`` True) cost what
  ``{"half_size": {task: c}}`` says.

  Raises:
    UserError: unreadable or malformed file (named, with the line for JSON
      syntax errors), unknown tasks, negative or non-finite costs, or a group
      left without a cost.
  """
  cost = file_costs(path, tasks)
  half_size = [False] * len(groups) if half_size is None else list(half_size)
  return np.asarray([cost(tuple(g), bool(h)) for g, h in zip(groups, half_size)], float)


def file_costs(path: str, tasks: Sequence[str]) -> CostFn:
  """The costs file of :func:`costs_from_json`, read and checked once, as a :data:`CostFn`.

  A grouping asks the cost of every candidate network; the file is not read
  again for each.

  Examples:
    >>> import tempfile
    >>> path = tempfile.mkstemp(suffix=".json")[1]
    >>> _ = open(path, "w").write('{"base": 2, "per_task": {"a": 1, "b": 0.5}}')
    >>> cost = file_costs(path, ["a", "b"])
    >>> cost((0, 1), False), cost((1,), False)
    (3.5, 2.5)
  """
  try:
    with open(path) as f:
      spec = json.load(f)
  except OSError as e:
    raise UserError(f"cannot read costs file {path}: {e.strerror}") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
  if not isinstance(spec, dict) or not ({"per_task", "groups", "half_size"} & set(spec)):
    raise UserError(f"{path}: expected an object with 'per_task' and/or 'groups'")
  tasks = list(tasks)

  def index(name):
    if name not in tasks:
      raise UserError(f"{path}: unknown task {name!r}; valid tasks: {tasks}")
    return tasks.index(name)

  def checked(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0):
      raise UserError(f"{path}: the cost of {what} must be a finite number >= 0, got {value!r}")
    return float(value)

  base = checked(spec.get("base", 0.0), "base")
  per_task = {index(t): checked(c, t)
              for t, c in _mapping(spec.get("per_task", {}), path).items()}
  explicit = {}
  for entry in spec.get("groups", []):
    if not isinstance(entry, dict) or "tasks" not in entry or "cost" not in entry:
      raise UserError(f"{path}: every 'groups' entry needs 'tasks' and 'cost', got {entry!r}")
    explicit[frozenset(index(t) for t in entry["tasks"])] = checked(entry["cost"],
                                                                    entry["tasks"])
  half_costs = {index(t): checked(c, t)
                for t, c in _mapping(spec.get("half_size", {}), path).items()}

  def cost(group: tuple[int, ...], half: bool) -> float:
    if half:
      if len(group) != 1 or group[0] not in half_costs:
        raise UserError(f"{path} gives no half-size cost for {[tasks[t] for t in group]} "
                        "(add it to 'half_size')")
      return half_costs[group[0]]
    if frozenset(group) in explicit:
      return explicit[frozenset(group)]
    if all(t in per_task for t in group):
      return base + sum(per_task[t] for t in group)
    raise UserError(f"{path} gives no cost for the network {[tasks[t] for t in group]} "
                    "(add its tasks to 'per_task' or the group to 'groups')")

  return cost


def _mapping(value, path) -> Mapping:
  if not isinstance(value, dict):
    raise UserError(f"{path}: 'per_task' and 'half_size' must map task names to costs")
  return value
