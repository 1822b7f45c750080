"""report.json entries and the printed table (docs/design.md §4, docs/contract.md)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from tgroup import evaluate
from tgroup.tasks import TaskSet

Groups = list[tuple[int, ...]]


def method_entry(taskset: TaskSet, draws: Sequence[tuple[Groups, dict | None]],
                 results: Mapping, stl_metric: Sequence[float]) -> dict:
  """One method's report entry; several draws (random) are averaged.

  ``draws`` holds (groups, assignment) pairs: one for most methods, one per
  random partition for ``random``.
  """
  tasks = list(taskset.tasks)
  scored = [evaluate.score_grouping(taskset, g, a, results) for g, a in draws]
  per_task = {t: {k: float(np.mean([s["per_task"][t][k] for s in scored]))
                  for k in ("test_loss", "test_metric")} for t in tasks}
  totals = [s["total_test_loss"] for s in scored]
  entry = {
      "groups": [[tasks[i] for i in g] for g in draws[0][0]],
      "per_task": per_task,
      "total_test_loss": float(np.mean(totals)),
      "total_test_error": (float(np.mean([s["total_test_error"] for s in scored]))
                           if taskset.metric_is_error else None),
      "delta_m": evaluate.delta_m([per_task[t]["test_metric"] for t in tasks], stl_metric,
                                  taskset.higher_is_better),
      "regret": None,
      "seconds": {"collect": 0.0, "group": 0.0,
                  "train": float(sum(s["train_seconds"] for s in scored))},
  }
  if len(draws) > 1:
    entry["total_test_loss_std"] = float(np.std(totals))
    entry["draws"] = [{"groups": [[tasks[i] for i in g] for g in d[0]],
                       "total_test_loss": t} for d, t in zip(draws, totals)]
  return entry


def method_report(taskset: TaskSet, method, outcome, results: Mapping,
                  stl_metric: Sequence[float], regret=None, half=None) -> dict:
  """One method's report.json entry: its scores, costs, grouping and its own fields.

  Args:
    taskset: the problem.
    method: the method's :class:`~tgroup.methods.Method` record.
    outcome: what it returned (:class:`~tgroup.methods.Outcome`).
    results: every trained network's results, by group.
    stl_metric: each task's STL test metric (Δm's reference).
    regret: a :class:`tgroup.regret.Regret`, when the oracle ran.
    half: the run's :class:`tgroup.resources.HalfSizeNetworks`, if any.
  """
  own = results if half is None else half.results(outcome.grouping, results)
  entry = method_entry(taskset, outcome.draws, own, stl_metric)
  grouping = outcome.grouping
  if grouping is not None and grouping.half_size is not None:
    entry["half_size"] = list(grouping.half_size)
    entry["network_costs"] = list(grouping.network_costs)
  entry["seconds"].update(outcome.seconds)
  # What choosing the groups cost, read next to the regret.
  entry["cost"] = {"networks": int(outcome.networks),
                   "seconds": float(entry["seconds"]["collect"] + entry["seconds"]["group"])}
  if grouping is not None:
    entry["grouping_status"] = grouping.status
    entry["predicted_objective"] = grouping.objective
  if outcome.gains is not None:
    entry["measure"] = outcome.gains.measure
  entry.update(outcome.report)
  if regret is not None:
    entry["regret"] = regret(entry["total_test_loss"], len(outcome.draws[0][0]), method.overlap)
  if taskset.ground_truth_groups is not None:
    entry.update(ground_truth_fields(taskset, *outcome.draws[0],
                                                taskset.ground_truth_groups))
  return entry


def ground_truth_fields(taskset: TaskSet, groups: Groups, assignment: dict | None,
                        ground_truth: Sequence[Sequence[str]]) -> dict:
  """Whether a grouping is the planted one, and its adjusted Rand index against it.

  A task's label is the group serving it (its only group in a partition).

  Examples:
    >>> from types import SimpleNamespace
    >>> ts = SimpleNamespace(tasks=("a", "b", "c"), num_tasks=3)
    >>> ground_truth_fields(ts, [(0, 1), (2,)], None, [["a", "b"], ["c"]])
    {'matches_ground_truth': True, 'adjusted_rand_index': 1.0}
  """
  from sklearn.metrics import adjusted_rand_score  # pylint: disable=g-import-not-at-top
  index = {t: i for i, t in enumerate(taskset.tasks)}
  truth = np.zeros(taskset.num_tasks, int)
  for k, g in enumerate(ground_truth):
    truth[[index[t] for t in g]] = k
  labels = np.zeros(taskset.num_tasks, int)
  for t in range(taskset.num_tasks):
    labels[t] = assignment[t] if assignment is not None else next(
        k for k, g in enumerate(groups) if t in g)
  named = [[taskset.tasks[i] for i in g] for g in groups]
  return {"matches_ground_truth": sorted(map(sorted, named)) == sorted(map(sorted, ground_truth)),
          "adjusted_rand_index": float(adjusted_rand_score(truth, labels))}


def format_table(report: dict) -> str:
  """A Markdown table: method, groups, total test loss, (error,) Δm, (regret, cost)."""
  entries = report["methods"]
  has_error = any(e["total_test_error"] is not None for e in entries.values())
  has_regret = any(e.get("regret") is not None for e in entries.values())
  columns = ["method", "groups", "total test loss"]
  columns += ["total test error"] if has_error else []
  # With the oracle, what choosing the groups cost: training runs beyond STL, seconds.
  columns += ["Δm vs STL (%)"] + (["regret", "cost"] if has_regret else [])
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for name, e in entries.items():
    loss = f"{e['total_test_loss']:.4f}"
    if "total_test_loss_std" in e:
      loss += f" ± {e['total_test_loss_std']:.4f} ({len(e['draws'])} draws)"
    half = e.get("half_size") or [False] * len(e["groups"])
    # ½ marks a half-size network (--allow_half_size).
    groups = " ".join(("½" if h else "") + "{" + ",".join(g) + "}"
                      for g, h in zip(e["groups"], half))
    row = [name, f"draw 1: {groups}" if "draws" in e else groups, loss]
    if has_error:
      row.append("n/a" if e["total_test_error"] is None else f"{e['total_test_error']:.4f}")
    row.append(f"{e['delta_m']:+.2f}")
    if has_regret:
      row.append("n/a" if e.get("regret") is None else f"{e['regret']:+.4f}")
      cost = e.get("cost")
      row.append("n/a" if cost is None else f"{cost['networks']} nets, {cost['seconds']:.1f} s")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def better_num_groups(report: dict) -> str | None:
  """A line naming the oracle's best number of groups when no method used it.

  Read from ``oracle_by_num_groups`` (runs with the oracle); None when some
  partition method's number of groups is the oracle's best, or without the oracle.

  Examples:
    >>> report = {"methods": {"principled": {"groups": [["a"], ["b", "c"]]}},
    ...           "oracle_by_num_groups": [
    ...               {"num_groups": 1, "groups": [["a", "b", "c"]], "total_test_loss": 0.9},
    ...               {"num_groups": 2, "groups": [["a"], ["b", "c"]], "total_test_loss": 1.2},
    ...               {"num_groups": 3, "groups": None, "total_test_loss": None}]}
    >>> print(better_num_groups(report))
    note: the oracle's best partition has 1 group ({a,b,c}, total test loss 0.9000); the methods used 2
  """
  options = [o for o in report.get("oracle_by_num_groups") or []
             if o["total_test_loss"] is not None]
  if not options:
    return None
  best = min(options, key=lambda o: o["total_test_loss"])
  used = sorted({len(e["groups"]) for e in report["methods"].values()})
  if best["num_groups"] in used:
    return None
  groups = " ".join("{" + ",".join(g) + "}" for g in best["groups"])
  k = best["num_groups"]
  return (f"note: the oracle's best partition has {k} group{'s' if k > 1 else ''} ({groups}, "
          f"total test loss {best['total_test_loss']:.4f}); the methods used "
          f"{', '.join(map(str, used))}")
