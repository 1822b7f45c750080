r"""Network selection on tables of trained networks' losses (Standley et al. 2020).

Network selection chooses networks of a :class:`NetworkTable` whose costs sum
to at most a budget so that every task is served, minimising the sum over tasks
of the lowest loss any chosen network gives it. That is a cover in
:class:`~tgroup.grouping.problem.SelectionProblem` with per-task scores = -loss.

Standley's higher-order approximation (HOA) predicts a network's losses from
the pair networks alone, which is what a user would select with before paying
to train the larger networks: :func:`hoa_table`.

Examples:
  >>> table = parse_table("0.5\t0.5\t0.5\n"
  ...                     "0.4\t0.4\t0.6\n"
  ...                     "0.3\t0.35\t\n"
  ...                     "\t0.45\t0.4\n"
  ...                     "0.45\t\t0.5\n", source="demo.tsv")
  >>> result = select_networks(table, budget=1.5)
  >>> [(n["tasks"], n["cost"]) for n in result["networks"]]
  [([2], 0.5), ([0, 1], 1.0)]
  >>> round(result["total_loss"], 6)
  1.15
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.network_table import NetworkTable, parse_table
from tgroup.grouping.problem import SelectionProblem

APPROXIMATIONS = ("none", "hoa")


def _fmt(tasks) -> str:
  return "{" + ", ".join(str(t) for t in sorted(tasks)) + "}"


def hoa_table(table: NetworkTable) -> NetworkTable:
  r"""Standley's higher-order approximation: larger networks predicted from pairs.

  Every network serving 3 or more tasks gets, for each of its tasks t, the mean
  over its other tasks u of t's loss on the pair network {t, u} (the network
  serving exactly t and u). Networks serving 1 or 2 tasks keep their measured
  losses. Only pairs are trained, so the prediction is what a user can select
  with before training anything larger.

  Args:
    table: measured losses; it must hold one pair network for every pair of
      tasks that some network of 3+ tasks serves.

  Returns:
    A table with the same networks and costs and the predicted losses.

  Raises:
    UserError: a needed pair network is missing, or appears twice.

  Examples:
    >>> table = parse_table("0.5\t0.5\t0.5\n0.3\t0.35\t\n\t0.45\t0.4\n"
    ...                     "0.45\t\t0.5\n0.4\t0.4\t0.6", source="demo.tsv")
    >>> hoa_table(table).losses[-1].round(6).tolist()
    [0.375, 0.4, 0.45]
    >>> np.array_equal(hoa_table(table).losses[:6], table.losses[:6], equal_nan=True)
    True
  """
  pairs: dict[frozenset[int], list[int]] = {}
  for n, tasks in enumerate(table.networks):
    if len(tasks) == 2:
      pairs.setdefault(tasks, []).append(n)
  losses = np.array(table.losses)
  for n, tasks in enumerate(table.networks):
    if len(tasks) < 3:
      continue
    for t in tasks:
      others = sorted(tasks - {t})
      losses[n, t] = math.fsum(
          table.losses[_pair_network(table, pairs, tasks, t, u), t] for u in others
      ) / len(others)
  return dataclasses.replace(table, losses=losses, source=f"{table.source} (HOA)")


def _pair_network(table, pairs, tasks, t, u) -> int:
  found = pairs.get(frozenset({t, u}), [])
  if len(found) != 1:
    problem = ("which the table lacks" if not found else
               f"which the table holds {len(found)} times (networks "
               f"{', '.join(map(str, found))}), so the approximation is ambiguous")
    raise UserError(f"{table.source}: the higher-order approximation of network "
                    f"{_fmt(tasks)} needs the pair network of tasks {_fmt({t, u})}, "
                    f"{problem}")
  return found[0]


def cheapest_cost(table: NetworkTable) -> float:
  r"""The lowest total cost of networks that together serve every task.

  Returns ``math.inf`` when some task is served by no network.

  Examples:
    >>> table = parse_table("0.5\t0.6\n0.3\t0.7", source="demo.tsv")
    >>> cheapest_cost(table)
    1.0
  """
  serves = np.isfinite(table.losses)
  if not serves.any(axis=0).all():
    return math.inf
  # A weighted set cover: the cover problem of any selection, with its costs
  # minimised and the losses unused.
  problem = SelectionProblem(table.networks, np.where(serves, 0.0, np.nan), overlap=True,
                             costs=table.costs)
  found = problem.solve(minimise_cost=True)
  return math.fsum(float(table.costs[n]) for n in found.chosen)


def _check_budget(budget) -> float:
  ok = isinstance(budget, numbers.Real) and not isinstance(budget, bool)
  if not ok or not math.isfinite(float(budget)) or float(budget) <= 0:
    raise UserError(f"budget must be a positive number, got {budget!r}")
  return float(budget)


def _check_same_layout(table: NetworkTable, test: NetworkTable) -> None:
  where = f"{test.source} does not match {table.source}:"
  if test.num_tasks != table.num_tasks:
    raise UserError(f"{where} {test.num_tasks} tasks, not {table.num_tasks}")
  if len(test.networks) != len(table.networks):
    raise UserError(f"{where} {len(test.networks)} networks, not {len(table.networks)}")
  for n, (a, b) in enumerate(zip(table.networks, test.networks)):
    if a != b or table.costs[n] != test.costs[n]:
      raise UserError(f"{where} network {n} serves tasks {_fmt(b)} at cost "
                      f"{test.costs[n]:g}, not {_fmt(a)} at cost {table.costs[n]:g}")


def _served_total(table: NetworkTable, served_by: Sequence[int]) -> float:
  return math.fsum(float(table.losses[n, t]) for t, n in enumerate(served_by))


def _best_total(table: NetworkTable, chosen: Sequence[int]) -> float:
  return math.fsum(float(np.nanmin(table.losses[list(chosen), t]))
                   for t in range(table.num_tasks))


def select_networks(table: NetworkTable, budget: float, approximation: str = "none",
                    test_table: NetworkTable | None = None,
                    time_limit_s: float | None = None) -> dict:
  r"""Standley's network selection: the best networks to train within a budget.

  Chooses networks whose costs sum to at most `budget` so that every task is
  served, minimising the sum over tasks of the lowest loss a chosen network
  gives it. The losses selected on are `table`'s, or with
  ``approximation="hoa"`` those :func:`hoa_table` predicts from its pairs.

  Args:
    table: measured (e.g. validation) losses.
    budget: the most the chosen networks may cost together (> 0).
    approximation: "none" selects on `table`; "hoa" on `hoa_table(table)`.
    test_table: the same networks' losses on held-out data (same networks,
      same order, same costs), or None.
    time_limit_s: CBC's wall-clock limit; "status" says whether the choice
      was proven optimal.

  Returns:
    A JSON-ready dict:
      "budget": `budget`;
      "networks": the chosen networks as ``{"tasks": [ascending task
        indices], "cost": c}``, ordered by cost, then tasks;
      "total_loss": the sum over tasks of the lowest loss any chosen network
        gives the task on `table` (the real losses, also under "hoa");
      "test_total_loss": the sum over tasks of the `test_table` loss of the
        network that serves the task in the selection (chosen on the
        selection table, never on the test losses), or None;
      "approximation": `approximation`;
      "predicted_total_loss": the minimised objective, i.e. the summed losses
        on the table selected on (the HOA predictions under "hoa");
      "assignment": a list; entry t is the index into "networks" of the
        network serving task t in the selection;
      "status": "optimal", or "feasible" when the time limit stopped CBC;
      "table", "test_table": the tables' sources (paths), or None.

  Raises:
    InfeasibleError: no networks within `budget` serve every task; the message
      names the budget and the cheapest cost that does.
    UserError: a bad budget or approximation, a test table whose networks
      differ, or (under "hoa") a missing pair network.

  Examples:
    >>> table = parse_table("0.5\t0.5\t0.5\n0.4\t0.4\t0.6\n0.3\t0.35\t\n"
    ...                     "\t0.45\t0.4\n0.45\t\t0.5\n", source="demo.tsv")
    >>> result = select_networks(table, budget=1)
    >>> result["networks"], round(result["total_loss"], 6)
    ([{'tasks': [0, 1, 2], 'cost': 1.0}], 1.4)
    >>> hoa = select_networks(table, budget=1, approximation="hoa")
    >>> round(hoa["predicted_total_loss"], 6), round(hoa["total_loss"], 6)
    (1.225, 1.4)
    >>> select_networks(table, budget=0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.InfeasibleError: demo.tsv: budget 0.5 ...; the cheapest that do cost 1
  """
  budget = _check_budget(budget)
  if approximation not in APPROXIMATIONS:
    raise UserError(f"approximation must be one of {', '.join(APPROXIMATIONS)}, got "
                    f"{approximation!r}")
  if test_table is not None:
    _check_same_layout(table, test_table)
  selecting = hoa_table(table) if approximation == "hoa" else table
  problem = SelectionProblem(selecting.networks, -selecting.losses, overlap=True,
                             costs=selecting.costs, budget=budget)
  found = problem.solve(time_limit_s)
  if found is None:
    raise InfeasibleError(_infeasible_message(table, budget))
  chosen = problem.chosen(found, by_cost=True)
  served_by = [chosen.candidates[chosen.assignment[t]] for t in range(table.num_tasks)]
  return {
      "budget": budget,
      "networks": [{"tasks": list(tasks), "cost": cost}
                   for tasks, cost in zip(chosen.groups, chosen.costs)],
      "total_loss": _best_total(table, chosen.candidates),
      "test_total_loss": None if test_table is None else _served_total(test_table, served_by),
      "approximation": approximation,
      "predicted_total_loss": _served_total(selecting, served_by),
      "assignment": [chosen.assignment[t] for t in range(table.num_tasks)],
      "status": found.status,
      "table": table.source,
      "test_table": None if test_table is None else test_table.source,
  }


def _infeasible_message(table: NetworkTable, budget: float) -> str:
  cheapest = cheapest_cost(table)
  if math.isinf(cheapest):
    unserved = int(np.flatnonzero(~np.isfinite(table.losses).any(axis=0))[0])
    return f"{table.source}: no network serves task {unserved}, whatever the budget"
  return (f"{table.source}: budget {budget:g} cannot buy networks serving all "
          f"{table.num_tasks} tasks; the cheapest that do cost {cheapest:g}")
