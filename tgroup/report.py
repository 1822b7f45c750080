"""report.json entries, regret against the oracle, and the printed table (DESIGN §4, §6)."""
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


def format_table(report: dict) -> str:
  """A Markdown table: method, groups, total test loss, (error,) Δm, (regret)."""
  entries = report["methods"]
  has_error = any(e["total_test_error"] is not None for e in entries.values())
  has_regret = any(e.get("regret") is not None for e in entries.values())
  columns = ["method", "groups", "total test loss"]
  columns += ["total test error"] if has_error else []
  columns += ["Δm vs STL (%)"] + (["regret"] if has_regret else [])
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
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)
