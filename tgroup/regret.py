"""Regret: a method's test total minus the oracle's at the same number of groups.

None (JSON null) where no comparison exists: STL's and MTL-all's partitions are
the only ones with m and 1 groups, so their regret would be 0 by construction.

The oracle's grouping with k groups (and the same model: partition or cover)
is selected on the validation table of every task subset under the run's other
constraints and budget, and scored on test like every method
(docs/design.md §4). It can be negative: the oracle selects on validation, not
on test.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from tgroup import evaluate
from tgroup.errors import InfeasibleError
from tgroup.grouping import Constraints, Grouping, solve_measured
from tgroup.grouping.budget import Budget
from tgroup.methods.oracle import validation_losses
from tgroup.tasks import TaskSet


class Regret:
  """``regret(total, k, overlap)``; the oracle's selection per (k, overlap) is solved once.

  Args:
    taskset: the problem.
    constraints: the run's constraints (the number of groups is replaced by k).
    table: the oracle's networks, one per task subset (validation selects).
    results: every trained network's results (test scores).
    budget: the run's budget limits, or None.
  """

  def __init__(self, taskset: TaskSet, constraints: Constraints, table: Mapping,
               results: Mapping, budget: Budget | None = None):
    self.taskset, self.constraints, self.results, self.budget = (taskset, constraints, results,
                                                                 budget)
    self.val = validation_losses(table)
    # (k, overlap) -> (the oracle's selection, its test total); (None, None): infeasible.
    self._best: dict[tuple[int, bool], tuple[Grouping | None, float | None]] = {}

  def __call__(self, total: float, k: int, overlap: bool) -> float | None:
    """``total`` minus the oracle's test total with ``k`` groups.

    None where no comparison exists: a partition into 1 or m groups is the only
    one of its size (MTL-all, STL), and an oracle without a feasible selection
    with ``k`` groups has nothing to compare with.
    """
    if not overlap and k in (1, self.taskset.num_tasks):
      return None
    _, best_total = self.best(k, overlap)
    return None if best_total is None else float(total - best_total)

  def best(self, k: int, overlap: bool = False) -> tuple[Grouping | None, float | None]:
    """The oracle's selection with ``k`` groups and its test total; (None, None) if none."""
    if (k, overlap) not in self._best:
      constraints = dataclasses.replace(self.constraints, num_groups=k, max_groups=None)
      try:
        best = solve_measured(self.taskset.tasks, self.val, constraints, overlap=overlap,
                              budget=self.budget)
      except InfeasibleError:
        self._best[(k, overlap)] = (None, None)
      else:
        groups, assignment = best.indices()
        self._best[(k, overlap)] = (best, evaluate.score_grouping(
            self.taskset, groups, assignment, self.results)["total_test_loss"])
    return self._best[(k, overlap)]

  def by_num_groups(self) -> list[dict]:
    """The oracle's best partition for every number of groups 1..m (report.json).

    One entry per k: ``num_groups``, ``groups`` (task names) and
    ``total_test_loss``; both None where the run's constraints and budget leave
    no partition with k groups. A user whose chosen number of groups is beaten
    by another reads it here.
    """
    out = []
    for k in range(1, self.taskset.num_tasks + 1):
      best, total = self.best(k)
      out.append({"num_groups": k,
                  "groups": None if best is None else [list(g) for g in best.groups],
                  "total_test_loss": total})
    return out
