"""What a user may ask of a grouping, checked once, in task names.

Every constraint here either filters which groups may exist (sizes, links, alone)
or counts chosen groups (exact or maximum number). Keeping them in that shape is
what lets the MIP stay a plain selection over candidate groups.
"""
from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tgroup.errors import InfeasibleError, UserError

# The order in which constraints are reported and relaxed when diagnosing.
CONSTRAINT_NAMES = ("num_groups", "max_groups", "min_group_size",
                    "max_group_size", "must_link", "cannot_link", "alone")


def _count_or_none(name: str, value: Any) -> int | None:
  if value is None:
    return None
  return _count(name, value)


def _count(name: str, value: Any) -> int:
  # bool is an int subclass; `num_groups=True` is a mistake, not 1.
  if isinstance(value, bool):
    raise UserError(f"{name} must be a positive integer, got {value!r}")
  try:
    value = operator.index(value)
  except TypeError:
    raise UserError(
        f"{name} must be a positive integer, got {value!r}") from None
  if value < 1:
    raise UserError(f"{name} must be a positive integer, got {value}")
  return value


def _names(name: str, value: Any) -> tuple[str, ...]:
  # A lone string would silently become its characters.
  if isinstance(value, str) or not isinstance(value, Sequence):
    raise UserError(f"{name} must be a sequence of task names, got {value!r}")
  for v in value:
    if not isinstance(v, str):
      raise UserError(f"{name} must hold task names (str), got {v!r}")
  return tuple(value)


def _pairs(name: str, value: Any) -> tuple[tuple[str, str], ...]:
  if isinstance(value, str) or not isinstance(value, Sequence):
    raise UserError(f"{name} must be a sequence of task-name pairs, got "
                    f"{value!r}")
  pairs = []
  for pair in value:
    if (isinstance(pair, str) or not isinstance(pair, Sequence)
        or len(pair) != 2 or not all(isinstance(p, str) for p in pair)):
      raise UserError(f"{name} entries must be pairs of task names, got "
                      f"{pair!r}")
    if pair[0] == pair[1]:
      raise UserError(f"{name} pair {tuple(pair)!r} links a task to itself")
    pairs.append((pair[0], pair[1]))
  return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Constraints:
  """Limits on a grouping, in task names.

  Attributes:
    num_groups: exact number of groups, or None for free.
    max_groups: at most this many groups, or None.
    min_group_size: every group has at least this many tasks.
    max_group_size: every group has at most this many tasks, or None.
    must_link: pairs of tasks that are always in the same groups (every chosen
      group holds both or neither).
    cannot_link: pairs of tasks that no group holds together.
    alone: tasks that form a singleton group and are in no other group.

  Lists are accepted and stored as tuples. Values that make no sense on their
  own raise :class:`~tgroup.errors.UserError` here; task names are checked by
  :meth:`check_tasks` once the tasks are known.

  Examples:
    >>> c = Constraints(num_groups=2, must_link=[("a", "b")])
    >>> c.must_link
    (('a', 'b'),)
    >>> c.to_json()["num_groups"]
    2
    >>> Constraints.from_json(c.to_json()) == c
    True
    >>> Constraints(min_group_size=3, max_group_size=2)
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: min_group_size=3 exceeds max_group_size=2
  """
  num_groups: int | None = None
  max_groups: int | None = None
  min_group_size: int = 1
  max_group_size: int | None = None
  must_link: tuple[tuple[str, str], ...] = ()
  cannot_link: tuple[tuple[str, str], ...] = ()
  alone: tuple[str, ...] = ()

  def __post_init__(self):
    normalised = {
        "num_groups": _count_or_none("num_groups", self.num_groups),
        "max_groups": _count_or_none("max_groups", self.max_groups),
        "min_group_size": _count("min_group_size", self.min_group_size),
        "max_group_size": _count_or_none("max_group_size",
                                         self.max_group_size),
        "must_link": _pairs("must_link", self.must_link),
        "cannot_link": _pairs("cannot_link", self.cannot_link),
        "alone": _names("alone", self.alone),
    }
    for name, value in normalised.items():
      object.__setattr__(self, name, value)
    if (self.max_group_size is not None
        and self.min_group_size > self.max_group_size):
      raise UserError(f"min_group_size={self.min_group_size} exceeds "
                      f"max_group_size={self.max_group_size}")
    if (self.num_groups is not None and self.max_groups is not None
        and self.num_groups > self.max_groups):
      raise UserError(f"num_groups={self.num_groups} exceeds "
                      f"max_groups={self.max_groups}")

  def check_tasks(self, tasks: Sequence[str]) -> None:
    """Raises UserError naming the valid tasks if a constraint names another.

    Examples:
      >>> Constraints(alone=["c"]).check_tasks(["a", "b"])
      Traceback (most recent call last):
      ...
      tgroup.errors.UserError: alone names unknown task 'c'; valid tasks: a, b
    """
    known = set(tasks)
    for field in ("must_link", "cannot_link", "alone"):
      for entry in getattr(self, field):
        for name in (entry if isinstance(entry, tuple) else (entry,)):
          if name not in known:
            raise UserError(f"{field} names unknown task {name!r}; valid "
                            f"tasks: {', '.join(tasks)}")

  def active(self) -> tuple[str, ...]:
    """Names of the constraints that differ from "no constraint".

    Examples:
      >>> Constraints(max_group_size=3, alone=["a"]).active()
      ('max_group_size', 'alone')
    """
    default = Constraints()
    return tuple(n for n in CONSTRAINT_NAMES
                 if getattr(self, n) != getattr(default, n))

  def relaxed(self, name: str) -> Constraints:
    """A copy with the constraint `name` removed.

    Examples:
      >>> c = Constraints(num_groups=2, max_group_size=3)
      >>> c.relaxed("num_groups").active()
      ('max_group_size',)
    """
    default = Constraints()
    return dataclasses.replace(self, **{name: getattr(default, name)})

  def describe(self, name: str) -> str:
    """One constraint as a user would write it, e.g. ``num_groups=2``.

    Examples:
      >>> Constraints(cannot_link=[("a", "b")]).describe("cannot_link")
      "cannot_link=[('a', 'b')]"
    """
    value = getattr(self, name)
    if isinstance(value, tuple):
      value = list(value)
    return f"{name}={value!r}"

  def to_json(self) -> dict[str, Any]:
    """A plain dict (lists, ints, None) for groups.json's "constraints"."""
    return {
        "num_groups": self.num_groups,
        "max_groups": self.max_groups,
        "min_group_size": self.min_group_size,
        "max_group_size": self.max_group_size,
        "must_link": [list(p) for p in self.must_link],
        "cannot_link": [list(p) for p in self.cannot_link],
        "alone": list(self.alone),
    }

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> Constraints:
    """Inverse of :meth:`to_json`; unknown keys are a UserError."""
    unknown = sorted(set(data) - set(CONSTRAINT_NAMES))
    if unknown:
      raise UserError(f"unknown constraint(s) {', '.join(unknown)}; known: "
                      f"{', '.join(CONSTRAINT_NAMES)}")
    return cls(**data)


def link_blocks(tasks: Sequence[str],
                constraints: Constraints) -> list[tuple[int, ...]]:
  """Tasks that must_link glues together (transitively), as index tuples.

  Any allowed group is a union of blocks, so candidates are built from blocks.
  Contradictions visible without solving raise InfeasibleError directly.

  Args:
    tasks: task names, in matrix order.
    constraints: already checked against `tasks`.

  Returns:
    Blocks sorted by their first task; each block's tasks in task order.

  Examples:
    >>> link_blocks(["a", "b", "c", "d"], Constraints(must_link=[("d", "b")]))
    [(0,), (1, 3), (2,)]
  """
  index = {t: i for i, t in enumerate(tasks)}
  parent = list(range(len(tasks)))

  def root(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for a, b in constraints.must_link:
    ra, rb = root(index[a]), root(index[b])
    parent[max(ra, rb)] = min(ra, rb)
  for a, b in constraints.must_link:
    for name in (a, b):
      if name in constraints.alone:
        raise InfeasibleError(
            f"no grouping satisfies the constraints: task {name!r} is in alone "
            f"but also in must_link {(a, b)!r}")
  for a, b in constraints.cannot_link:
    if root(index[a]) == root(index[b]):
      raise InfeasibleError(
          f"no grouping satisfies the constraints: cannot_link {(a, b)!r} "
          f"contradicts must_link, which puts {a!r} and {b!r} in the same "
          "groups")
  blocks: dict[int, list[int]] = {}
  for i in range(len(tasks)):
    blocks.setdefault(root(i), []).append(i)
  return [tuple(b) for b in sorted(blocks.values())]


def allowed_groups(membership: np.ndarray, tasks: Sequence[str],
                   constraints: Constraints,
                   min_size: int = 1) -> np.ndarray:
  """Which rows of a (groups × tasks) boolean matrix are allowed groups.

  Args:
    membership: bool array (n, m); row c is a group.
    tasks: task names, in column order.
    constraints: the size, link and alone filters to apply.
    min_size: an extra lower bound on group size from the objective (TAG's
      score is undefined for a singleton, so it passes 2).

  Returns:
    bool array (n,).

  Examples:
    >>> import numpy as np
    >>> groups = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=bool)
    >>> allowed_groups(groups, ["a", "b", "c"],
    ...                Constraints(cannot_link=[("b", "c")]))
    array([ True,  True, False])
  """
  index = {t: i for i, t in enumerate(tasks)}
  size = membership.sum(axis=1)
  ok = size >= max(constraints.min_group_size, min_size)
  if constraints.max_group_size is not None:
    ok &= size <= constraints.max_group_size
  for a, b in constraints.must_link:
    ok &= membership[:, index[a]] == membership[:, index[b]]
  for a, b in constraints.cannot_link:
    ok &= ~(membership[:, index[a]] & membership[:, index[b]])
  for name in constraints.alone:
    ok &= ~membership[:, index[name]] | (size == 1)
  return ok
