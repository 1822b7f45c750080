"""The answer of a grouping, in task names, and its groups.json form."""
from __future__ import annotations

import dataclasses
from typing import Any

from tgroup.errors import UserError

STATUSES = ("optimal", "feasible")


def relative_gap(objective: float, bound: float | None) -> float | None:
  """``(bound - objective) / max(|objective|, |bound|, tiny)``; None without a bound.

  0 when the bound is the objective; at most 1 when both are positive; a bound far above a
  negative objective can give more than 1 (the gap is relative to the larger magnitude).

  Examples:
    >>> relative_gap(99.0, 100.0), relative_gap(2.0, 2.0), relative_gap(0.0, 0.0)
    (0.01, 0.0, 0.0)
    >>> print(relative_gap(1.0, None))
    None
  """
  if bound is None:
    return None
  return (bound - objective) / max(abs(objective), abs(bound), 1e-300)


def gap_closed(objective: float, bound: float | None) -> bool:
  """Whether `bound` proves `objective` optimal:
  ``|bound - objective| <= 1e-9 max(1, |objective|)``.

  Examples:
    >>> gap_closed(40.0, 40.0 + 1e-8), gap_closed(40.0, 40.1), gap_closed(40.0, None)
    (True, False, False)
  """
  return bound is not None and abs(bound - objective) <= 1e-9 * max(1.0, abs(objective))


@dataclasses.dataclass(frozen=True)
class Grouping:
  """Groups of tasks chosen by :func:`~tgroup.grouping.solve_grouping`.

  Attributes:
    tasks: all task names, in matrix order.
    groups: the chosen groups in canonical order: each group's tasks in task
      order, groups sorted by their task indices (so by first task, ties
      broken by the next ones).
    assignment: task -> index in `groups` of the group that serves it (its
      only group in a partition; its best chosen group in a cover).
    objective: the maximised objective, the sum over tasks of their score in
      the group serving them.
    status: "optimal" when the answer is proven optimal over every allowed group
      (the gap below is closed), "feasible" otherwise (a time limit stopped the
      search, or generated candidates without a closed bound).
    candidates: "all" when every allowed group was a candidate (a proven
      optimum is the true optimum), "generated" when columns were generated.
    bound: an upper bound on the objective of every grouping that satisfies the
      constraints (over all allowed groups, not only the candidates): the
      objective itself when proven optimal (also for "all"), the Lagrangian bound
      of column generation otherwise; None when nothing bounds it (a time limit
      over "all" candidates, a budget with generated candidates).
    gap: ``(bound - objective) / max(|objective|, |bound|, tiny)``: 0 when
      proven optimal; None without a bound.
    objective_name: "principled", "marginal", "tag" or "hoa".
    constraints: the constraints as :meth:`Constraints.to_json` gives them.
    overlap: False for a partition, True for a cover.
    network_costs: with a :class:`~tgroup.grouping.budget.Budget`, each group's
      network cost (aligned with `groups`); None otherwise.
    half_size: with a budget, whether each group's network is a half-size one.
    budget: the budget's settings (:meth:`Budget.to_json`), or None.

  Examples:
    >>> g = Grouping(tasks=("a", "b"), groups=(("a", "b"),),
    ...              assignment={"a": 0, "b": 0}, objective=1.5,
    ...              status="optimal", candidates="all",
    ...              objective_name="marginal", constraints={})
    >>> g.to_json()["groups"]
    [['a', 'b']]
    >>> Grouping.from_json(g.to_json()) == g
    True
  """
  tasks: tuple[str, ...]
  groups: tuple[tuple[str, ...], ...]
  assignment: dict[str, int]
  objective: float
  status: str
  candidates: str
  objective_name: str
  constraints: dict[str, Any]
  overlap: bool = False
  network_costs: tuple[float, ...] | None = None
  half_size: tuple[bool, ...] | None = None
  budget: dict[str, Any] | None = None
  bound: float | None = None
  gap: float | None = None

  def indices(self) -> tuple[list[tuple[int, ...]], dict[int, int]]:
    """Groups as task-index tuples and the assignment by task index, the form
    :func:`tgroup.evaluate.train_groups` and ``score_grouping`` take.

    Examples:
      >>> g = Grouping(tasks=("a", "b", "c"), groups=(("a", "c"), ("b",)),
      ...              assignment={"a": 0, "b": 1, "c": 0}, objective=0.0,
      ...              status="optimal", candidates="all", objective_name="marginal",
      ...              constraints={})
      >>> g.indices()
      ([(0, 2), (1,)], {0: 0, 1: 1, 2: 0})
    """
    index = {t: i for i, t in enumerate(self.tasks)}
    return ([tuple(index[t] for t in g) for g in self.groups],
            {index[t]: k for t, k in self.assignment.items()})

  @property
  def total_cost(self) -> float | None:
    """The chosen networks' summed cost, with a budget; None otherwise."""
    return None if self.network_costs is None else float(sum(self.network_costs))

  def to_json(self) -> dict[str, Any]:
    """groups.json's contract (docs/contract.md) plus this result's extra keys."""
    extra = {} if self.network_costs is None else {
        "network_costs": [float(c) for c in self.network_costs],
        "half_size": [bool(h) for h in self.half_size],
        "total_cost": self.total_cost, "budget": dict(self.budget or {})}
    return {**{
        "tasks": list(self.tasks),
        "groups": [list(g) for g in self.groups],
        "objective": float(self.objective),
        "status": self.status,
        "constraints": dict(self.constraints),
        "objective_name": self.objective_name,
        "candidates": self.candidates,
        "assignment": dict(self.assignment),
        "overlap": bool(self.overlap),
        "bound": None if self.bound is None else float(self.bound),
        "gap": None if self.gap is None else float(self.gap),
    }, **extra}

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> Grouping:
    """Reads :meth:`to_json`'s dict; the extra keys may be missing.

    Without "assignment", a task is served by the first group holding it;
    without "bound" and "gap" (files written before they existed), both are None.
    """
    try:
      tasks = tuple(data["tasks"])
      groups = tuple(tuple(g) for g in data["groups"])
      objective = float(data["objective"])
      status = data["status"]
      constraints = dict(data["constraints"])
    except (KeyError, TypeError, ValueError) as e:
      raise UserError(f"malformed grouping JSON ({type(e).__name__}: {e})"
                      ) from None
    if status not in STATUSES:
      raise UserError(f"grouping status must be one of {STATUSES}, got "
                      f"{status!r}")
    assignment = data.get("assignment")
    if assignment is None:
      assignment = {t: next(k for k, g in enumerate(groups) if t in g)
                    for t in tasks if any(t in g for g in groups)}
    return cls(tasks=tasks, groups=groups, assignment=dict(assignment),
               objective=objective, status=status,
               candidates=data.get("candidates", "all"),
               objective_name=data.get("objective_name", "unknown"),
               constraints=constraints, overlap=bool(data.get("overlap",
                                                              False)),
               network_costs=(None if data.get("network_costs") is None
                              else tuple(float(c) for c in data["network_costs"])),
               half_size=(None if data.get("half_size") is None
                          else tuple(bool(h) for h in data["half_size"])),
               budget=data.get("budget"),
               bound=None if data.get("bound") is None else float(data["bound"]),
               gap=None if data.get("gap") is None else float(data["gap"]))
