"""The budget sweep of a pipeline run: the quality–budget frontier, trained and plotted.

The first method that groups by the gains MIP is solved at ``budget_sweep``
budgets from the cheapest feasible selection to the cost of the unconstrained
optimum (:func:`tgroup.grouping.frontier.budget_frontier`, number of groups
left free: it is what the budget trades), every point's groups are trained on
the run's protocol, and ``frontier.json`` and ``frontier.png`` are written with
STL and MTL-all at their own costs for reference.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping

from tgroup import evaluate
from tgroup import io
from tgroup import plots
from tgroup.grouping import frontier as frontier_lib
from tgroup.grouping.budget import Budget
from tgroup.methods.method import Method, Outcome
from tgroup.resources import HalfSizeNetworks


def sweep(taskset, config, workdir: str, method: Method, outcome: Outcome, budget: Budget,
          train: Callable, report: Mapping, half: HalfSizeNetworks | None = None) -> dict:
  """Solves ``method`` at the sweep's budgets, trains every point's groups, writes the files.

  Returns:
    A summary for report.json: the method, the cost model, the number of points.
  """
  # The number of groups is what the budget trades: the sweep leaves it free.
  constraints = dataclasses.replace(config.constraints, num_groups=None)
  points = frontier_lib.budget_frontier(
      list(taskset.tasks), outcome.gains.gains, method.objective, budget,
      config.resources.budget_sweep, constraints, overlap=method.overlap)
  draws = [p.grouping.indices() for p in points]
  results = train(sorted({g for groups, _ in draws for g in groups}))
  totals = {k: evaluate.score_grouping(
      taskset, groups, assignment,
      results if half is None else half.results(p.grouping, results))["total_test_loss"]
            for k, ((groups, assignment), p) in enumerate(zip(draws, points))}
  data = frontier_lib.frontier_json(points, budget.cost_model, totals)
  data["method"], data["constraints"] = method.name, constraints.to_json()
  m = taskset.num_tasks
  for name, groups in (("stl", [(i,) for i in range(m)]), ("mtl_all", [tuple(range(m))])):
    entry = report["methods"].get(name)
    data[name] = {"cost": float(sum(budget.costs(groups, [False] * len(groups)))),
                  "test_total": None if entry is None else entry["total_test_loss"]}
  io.write_json(os.path.join(workdir, "frontier.json"), data)
  plots.frontier(data, os.path.join(workdir, "frontier.png"), close=True)
  return {"method": method.name, "cost_model": budget.cost_model, "points": len(points)}
