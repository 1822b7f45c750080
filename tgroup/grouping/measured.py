"""Grouping from measured per-network results (the oracle's selection).

Given per-task results of trained networks (one per task subset), choose the
groups that minimise the total measured loss under the same constraints as any
other grouping: a partition, or a cover where each task is served by its best
chosen network.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.budget import Budget
from tgroup.grouping.constraints import Constraints, allowed_groups
from tgroup.grouping.problem import SelectionProblem
from tgroup.grouping.result import Grouping


def solve_measured(tasks: Sequence[str], losses: Mapping[tuple[int, ...], np.ndarray],
                   constraints: Constraints = Constraints(), overlap: bool = False,
                   time_limit_s: float | None = None, budget: Budget | None = None) -> Grouping:
  """The groups with the lowest total measured loss among the networks given.

  Args:
    tasks: task names (index order of the loss arrays).
    losses: task-index group -> ``(m,)`` per-task losses of that group's network
      (entries of tasks outside the group are ignored). Lower is better; pass
      negated values for metrics where higher is better.
    constraints: as for :func:`tgroup.grouping.solve_grouping`.
    overlap: False for a partition, True for a cover.
    time_limit_s: CBC's time limit.
    budget: network costs and limits (total, per-network cap) on the chosen
      networks; half-size networks are not in a measured table and are ignored.

  Returns:
    A :class:`Grouping` whose ``objective`` is the total loss (lower is better)
    and ``objective_name`` is ``"measured_loss"``.

  Examples:
    >>> import numpy as np
    >>> table = {(0,): np.array([1.0, 0, 0]), (1,): np.array([0, 1.0, 0]),
    ...          (2,): np.array([0, 0, 1.0]), (0, 1): np.array([0.6, 0.7, 0]),
    ...          (1, 2): np.array([0, 1.5, 1.2]), (0, 2): np.array([2.0, 0, 2.0]),
    ...          (0, 1, 2): np.array([0.9, 0.9, 0.9])}
    >>> g = solve_measured(["a", "b", "c"], table, Constraints(num_groups=2))
    >>> g.groups, round(g.objective, 6)
    ((('a', 'b'), ('c',)), 2.3)
  """
  tasks = tuple(tasks)
  m = len(tasks)
  constraints.check_tasks(tasks)
  groups = sorted(losses, key=lambda g: (len(g), g))
  membership = np.zeros((len(groups), m), dtype=bool)
  for c, g in enumerate(groups):
    if not g or min(g) < 0 or max(g) >= m:
      raise UserError(f"measured group {g} is not a set of task indices in [0, {m})")
    membership[c, list(g)] = True
  keep = allowed_groups(membership, tasks, constraints)
  groups = [g for g, k in zip(groups, keep) if k]
  scores = np.full((len(groups), m), np.nan)
  for c, g in enumerate(groups):
    values = np.asarray(losses[g], dtype=np.float64)[list(g)]
    if not np.isfinite(values).all():
      raise UserError(f"measured loss of group {[tasks[t] for t in g]} is not finite")
    scores[c, list(g)] = -values
  problem = SelectionProblem(tuple(frozenset(g) for g in groups), scores, overlap,
                             num_groups=constraints.num_groups,
                             max_groups=constraints.max_groups).priced(budget)
  found = problem.solve(time_limit_s)
  if found is None:
    limits = [constraints.describe(n) for n in constraints.active()]
    limits += [budget.describe(n) for n in budget.active()] if budget is not None else []
    raise InfeasibleError("no grouping of the measured networks satisfies the constraints "
                          f"({', '.join(limits)})")
  return problem.grouping(tasks, found, "measured_loss", constraints, budget,
                          objective=-found.objective)
