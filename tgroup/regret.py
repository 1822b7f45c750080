"""Regret: a method's test total minus the oracle's at the same number of groups.

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
from tgroup.grouping import Constraints, solve_measured
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
    self.totals: dict[tuple[int, bool], float | None] = {}

  def __call__(self, total: float, k: int, overlap: bool) -> float | None:
    """``total`` minus the oracle's test total with ``k`` groups; None if it has none."""
    if (k, overlap) not in self.totals:
      constraints = dataclasses.replace(self.constraints, num_groups=k, max_groups=None)
      try:
        best = solve_measured(self.taskset.tasks, self.val, constraints, overlap=overlap,
                              budget=self.budget)
      except InfeasibleError:
        self.totals[(k, overlap)] = None
      else:
        groups, assignment = best.indices()
        self.totals[(k, overlap)] = evaluate.score_grouping(
            self.taskset, groups, assignment, self.results)["total_test_loss"]
    best_total = self.totals[(k, overlap)]
    return None if best_total is None else float(total - best_total)
