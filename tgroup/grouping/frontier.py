"""The quality–budget frontier: the best grouping at each of N budgets.

A user with a deployment budget wants the whole trade-off, not one point. The
sweep runs from the cheapest feasible selection (the least total cost that
satisfies every other constraint) to the cost of the unconstrained optimum,
beyond which more budget buys nothing. Every point is solved exactly over the
same candidate networks, so the feasible sets are nested and the predicted
score never decreases with the budget.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.budget import Budget
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.problem import SelectionProblem
from tgroup.grouping.result import Grouping
from tgroup.grouping.scores import check_gains, check_objective
from tgroup.grouping.select import Selection
from tgroup.grouping.solve import check_tasks, gains_problem, solve_grouping


class FrontierPoint(NamedTuple):
  """One budget of the sweep and the best grouping within it."""
  budget: float
  grouping: Grouping

  @property
  def cost(self) -> float:
    return self.grouping.total_cost

  @property
  def predicted(self) -> float:
    return self.grouping.objective


def budget_frontier(tasks: Sequence[str], gains, objective: str, budget: Budget,
                    num_points: int, constraints: Constraints = Constraints(), *,
                    overlap: bool = False, max_candidates: int = 2**16,
                    seed: int = 0) -> list[FrontierPoint]:
  """Best groupings at ``num_points`` budgets from the cheapest feasible to the optimum's cost.

  Args:
    tasks, gains, objective, constraints, overlap, max_candidates, seed: as
      for :func:`tgroup.grouping.solve_grouping`.
    budget: network costs and per-network limits; its ``total`` is ignored
      (the sweep sets it).
    num_points: budgets in the sweep (>= 2), evenly spaced.

  Returns:
    One :class:`FrontierPoint` per budget, in increasing budget; each point's
    cost is at most its budget.

  Raises:
    InfeasibleError: no budget makes the other constraints feasible (the
      message names the binding constraint).

  Examples:
    >>> gains = [[1.0, 0.8, -1.0], [0.8, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    >>> b = Budget(cost=lambda g, half: 1.0 + 0.5 * len(g), cost_model="toy")
    >>> points = budget_frontier(["a", "b", "c"], gains, "principled", b, 3)
    >>> [(p.budget, p.cost, p.grouping.groups) for p in points]
    [(2.5, 2.5, (('a', 'b', 'c'),)), (3.5, 3.5, (('a', 'b'), ('c',))), \
(4.5, 4.5, (('a',), ('b',), ('c',)))]
    >>> [round(p.predicted, 3) for p in points]  # never decreases with the budget
    [0.2, 2.8, 3.0]
  """
  if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or (
      num_points < 2):
    raise UserError(f"a budget sweep needs at least 2 points, got {num_points!r}")
  tasks = check_tasks(tasks)
  g = check_gains(gains, tasks)
  check_objective(objective)
  constraints.check_tasks(tasks)
  free = budget.relaxed("budget") if budget.total is not None else budget
  problem = gains_problem(tasks, g, objective, constraints, overlap, max_candidates, seed,
                          free)
  cheapest = problem.solve(minimise_cost=True)
  if cheapest is None:
    # The usual path explains which constraint (or cap) makes it infeasible.
    solve_grouping(tasks, g, objective, constraints, overlap, max_candidates, seed=seed,
                   budget=free)
    raise InfeasibleError("no grouping satisfies the constraints at any budget")
  best = problem.solve()
  low, high = (_total(problem, found) for found in (cheapest, best))
  points = []
  for b in np.linspace(low, max(low, high), num_points):
    at = Budget(cost=budget.cost, total=_slack(float(b)),
                max_network_cost=budget.max_network_cost,
                allow_half_size=budget.allow_half_size, cost_model=budget.cost_model)
    within = dataclasses.replace(problem, budget=at.total)
    found = within.solve()
    if found is None:  # only rounding could do this: the cheapest selection fits
      raise RuntimeError(f"budget {b} below the cheapest selection {low}")
    points.append(FrontierPoint(float(b), within.grouping(tasks, found, objective,
                                                          constraints, at)))
  return points


def _total(problem: SelectionProblem, found: Selection) -> float:
  return math.fsum(float(problem.costs[c]) for c in found.chosen)


def _slack(b: float) -> float:
  """The budget as the MIP sees it: a hair above b, so a selection costing
  exactly b (up to summation order) is not cut off by rounding."""
  return b + 1e-9 * max(1.0, abs(b))


def frontier_json(points: Sequence[FrontierPoint], cost_model: str,
                  test_totals: Mapping[int, float] | None = None) -> dict[str, Any]:
  """``frontier.json``'s contract: ``{"cost_model", "points": [{"budget", "cost",
  "groups", "predicted", "test_total"}]}``; ``test_totals`` maps a point's index
  to the real test total of its groups where they were trained (else null)."""
  test_totals = test_totals or {}
  return {"cost_model": cost_model,
          "points": [{"budget": p.budget, "cost": p.cost,
                      "groups": [list(g) for g in p.grouping.groups],
                      "half_size": list(p.grouping.half_size),
                      "predicted": p.predicted,
                      "test_total": test_totals.get(k)} for k, p in enumerate(points)]}
