"""One selection problem, however it arose, and its answer in slots.

Grouping tasks from gains, grouping them from measured losses, choosing trained
networks from Standley's tables and sweeping budgets all ask the same thing:
which candidate task sets to choose, every task served by one chosen candidate
holding it, so that the summed task scores are highest within the limits.
:class:`SelectionProblem` states it once, :meth:`SelectionProblem.solve` hands
it to the one MIP (:func:`~tgroup.grouping.select.try_select_candidates`), and
:meth:`SelectionProblem.chosen` turns the answer into slots: the chosen
candidates in a fixed order, the slot serving each task, each slot's cost.

Examples:
  >>> import numpy as np
  >>> nan = np.nan
  >>> problem = SelectionProblem(
  ...     sets=(frozenset({1}), frozenset({0, 1}), frozenset({0}), frozenset({2})),
  ...     scores=np.array([[nan, 2.0, nan], [1.0, 1.0, nan], [1.0, nan, nan],
  ...                      [nan, nan, 1.0]]),
  ...     overlap=False, costs=np.array([1.0, 1.0, 1.0, 2.0]))
  >>> problem.chosen(problem.solve())
  ChosenNetworks(candidates=(2, 0, 3), groups=((0,), (1,), (2,)), \
assignment={0: 0, 1: 1, 2: 2}, costs=(1.0, 1.0, 2.0), half_size=(False, False, False))
  >>> problem.capped(1.5).solve() is None  # only candidate 3 serves task 2
  True
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tgroup.grouping.budget import Budget
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.result import Grouping
from tgroup.grouping.result import gap_closed
from tgroup.grouping.result import relative_gap
from tgroup.grouping.select import Selection, try_select_candidates


class ChosenNetworks(NamedTuple):
  """A solved selection in slots: the chosen candidates in a fixed order.

  Attributes:
    candidates: the index (into the problem's sets) of the candidate in each slot.
    groups: each slot's task indices, ascending.
    assignment: task index -> the slot serving it.
    costs: each slot's cost, or None when the problem has no costs.
    half_size: whether each slot's network is a half-size one.
  """
  candidates: tuple[int, ...]
  groups: tuple[tuple[int, ...], ...]
  assignment: dict[int, int]
  costs: tuple[float, ...] | None
  half_size: tuple[bool, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class SelectionProblem:
  """Candidates, each task's score in each, their costs, and the limits on a choice.

  Attributes:
    sets: each candidate's task indices; the same set may appear twice (e.g.
      as a half-size and a full-size network).
    scores: float (n_candidates, m); ``[c, t]`` is task t's score when served
      by candidate c, NaN when t is not in c. Maximised: pass negated losses.
    overlap: False for a partition (every task in exactly one chosen
      candidate), True for a cover (every task served by its best chosen one).
    half_size: bool (n_candidates,), whether each candidate is a half-size
      network; None: none is.
    costs: float (n_candidates,), each candidate's network cost, or None.
    num_groups: exactly this many candidates are chosen, or None.
    max_groups: at most this many, or None.
    budget: the chosen candidates' costs sum to at most this (needs `costs`),
      or None.
    candidates: "all" when every allowed group is a candidate (a proven
      optimum is the true one), "generated" when they are generated columns.
  """
  sets: tuple[frozenset[int], ...]
  scores: np.ndarray
  overlap: bool
  half_size: np.ndarray | None = None
  costs: np.ndarray | None = None
  num_groups: int | None = None
  max_groups: int | None = None
  budget: float | None = None
  candidates: str = "all"

  def __post_init__(self):
    object.__setattr__(self, "sets", tuple(self.sets))
    object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64))
    object.__setattr__(self, "overlap", bool(self.overlap))
    half = (np.zeros(len(self.sets), bool) if self.half_size is None
            else np.asarray(self.half_size, dtype=bool))
    object.__setattr__(self, "half_size", half)
    if self.costs is not None:
      object.__setattr__(self, "costs", np.asarray(self.costs, dtype=np.float64))

  def priced(self, budget: Budget | None) -> SelectionProblem:
    """This problem under `budget`: its costs, its total, its per-network cap.

    None leaves the problem as it is (no costs, no limits).
    """
    if budget is None:
      return self
    costs = budget.costs([sorted(s) for s in self.sets], self.half_size)
    return dataclasses.replace(self, costs=costs, budget=budget.total).capped(
        budget.max_network_cost)

  def capped(self, max_network_cost: float | None) -> SelectionProblem:
    """This problem without the candidates costing more than `max_network_cost`
    (None: all kept)."""
    if max_network_cost is None:
      return self
    keep = self.costs <= max_network_cost
    return dataclasses.replace(
        self, sets=tuple(s for s, k in zip(self.sets, keep) if k), scores=self.scores[keep],
        half_size=self.half_size[keep], costs=self.costs[keep])

  def solve(self, time_limit_s: float | None = None,
            minimise_cost: bool = False) -> Selection | None:
    """The best selection, or None when nothing satisfies the limits.

    With `minimise_cost`, the cheapest selection instead (the scores only
    decide which tasks a candidate may serve); see
    :func:`~tgroup.grouping.select.try_select_candidates`.
    """
    if not self.sets:
      return None
    # Costs enter the MIP only where they constrain or are the objective.
    costs = self.costs if (self.budget is not None or minimise_cost) else None
    return try_select_candidates(
        self.sets, self.scores, self.overlap, num_groups=self.num_groups,
        max_groups=self.max_groups, costs=costs, budget=self.budget,
        time_limit_s=time_limit_s, minimise_cost=minimise_cost)

  def chosen(self, found: Selection, by_cost: bool = False) -> ChosenNetworks:
    """The chosen candidates in slots.

    Slots follow the canonical order (by task indices; a grouping's order), or
    with `by_cost` cost first, then task indices (a network selection's).
    Ties keep the candidates' order.

    Examples:
      >>> nan = np.nan
      >>> problem = SelectionProblem(
      ...     sets=(frozenset({0, 2}), frozenset({1}), frozenset({2})),
      ...     scores=[[1.0, nan, 1.0], [nan, 1.0, nan], [nan, nan, 2.0]],
      ...     overlap=True, costs=np.array([1.0, 0.5, 2.0]))
      >>> found = Selection(chosen=(0, 1, 2), assignment={0: 0, 1: 1, 2: 2},
      ...                   objective=4.0, status="optimal")
      >>> problem.chosen(found)
      ChosenNetworks(candidates=(0, 1, 2), groups=((0, 2), (1,), (2,)), \
assignment={0: 0, 1: 1, 2: 2}, costs=(1.0, 0.5, 2.0), half_size=(False, False, False))
      >>> problem.chosen(found, by_cost=True)[:3]
      ((1, 0, 2), ((1,), (0, 2), (2,)), {0: 1, 1: 0, 2: 2})
    """
    groups = {c: tuple(sorted(self.sets[c])) for c in found.chosen}
    if by_cost:
      order = sorted(found.chosen, key=lambda c: (float(self.costs[c]), groups[c], c))
    else:
      order = sorted(found.chosen, key=lambda c: (groups[c], c))
    slot = {c: k for k, c in enumerate(order)}
    return ChosenNetworks(
        candidates=tuple(order), groups=tuple(groups[c] for c in order),
        assignment={t: slot[c] for t, c in found.assignment.items()},
        costs=None if self.costs is None else tuple(float(self.costs[c]) for c in order),
        half_size=tuple(bool(self.half_size[c]) for c in order))

  def grouping(self, tasks: Sequence[str], found: Selection, objective_name: str,
               constraints: Constraints, budget: Budget | None, *,
               objective: float | None = None, bound: float | None = None) -> Grouping:
    """The :class:`Grouping` of a selection, in task names and canonical order.

    Over all candidates ("all"), CBC's proof is the whole story: an optimal selection
    is its own bound (gap 0), a time-limited one has none. Over generated candidates
    only `bound` can prove optimality: the status is "optimal" exactly when it closes
    the gap (:func:`~tgroup.grouping.result.gap_closed`), else "feasible".

    Args:
      tasks: the task names, by index.
      found: what :meth:`solve` returned.
      objective_name: what the objective measures (e.g. "principled").
      constraints: the constraints it was chosen under, for the record.
      budget: the budget it was chosen within (for the record), or None.
      objective: the objective to report; by default the maximised one (a bound is
        then reported only where it is the objective itself).
      bound: with generated candidates, an upper bound on the maximised objective
        over every allowed group (see :mod:`tgroup.grouping.colgen`), or None.
    """
    chosen = self.chosen(found)
    tasks = tuple(tasks)
    reported = found.objective if objective is None else objective
    if self.candidates == "all":
      status = found.status
      bound = reported if status == "optimal" else None
    else:
      if objective is not None and not gap_closed(found.objective, bound):
        bound = None  # a bound on the maximised score says nothing about another sense
      status = "optimal" if gap_closed(found.objective, bound) else "feasible"
      if bound is not None and status == "optimal":
        bound = reported
    gap = relative_gap(reported, bound)
    return Grouping(
        tasks=tasks, groups=tuple(tuple(tasks[t] for t in g) for g in chosen.groups),
        assignment={tasks[t]: k for t, k in chosen.assignment.items()},
        objective=reported, status=status, bound=bound, gap=gap,
        candidates=self.candidates, objective_name=objective_name,
        constraints=constraints.to_json(), overlap=self.overlap,
        network_costs=chosen.costs,
        half_size=None if chosen.costs is None else chosen.half_size,
        budget=None if budget is None else budget.to_json())
