"""HOA (Standley et al. 2020): train every pair and every single task, group on the table.

The m(m+1)/2 networks are trained on the run's protocol (the run's cache keeps
them, so networks a grouping reuses are trained once). A task's validation loss
trained with b alone is the gain it "receives" from b, negated since the MIP
maximises; the higher-order approximation then scores a group by the mean of
its members' pairs (docs/design.md §3), and groups form a cover.
"""
from __future__ import annotations

import os
import time

import numpy as np

from tgroup.gains.gains import Gains
from tgroup.grouping import hoa_gains, solve_grouping
from tgroup.methods.method import Context, Method, Outcome


def pair_table(results, m: int) -> np.ndarray:
  """``table[a][b]``: task a's validation loss trained with b alone (``[a][a]``: alone).

  Examples:
    >>> from types import SimpleNamespace as Net
    >>> results = {(0,): Net(val_loss=[0.5, 0]), (1,): Net(val_loss=[0, 0.7]),
    ...            (0, 1): Net(val_loss=[0.4, 0.9])}
    >>> pair_table(results, 2).tolist()
    [[0.5, 0.4], [0.9, 0.7]]
  """
  table = np.zeros((m, m))
  for g, r in results.items():
    if len(g) == 1:
      table[g[0], g[0]] = r.val_loss[g[0]]
    else:
      i, j = g
      table[i, j], table[j, i] = r.val_loss[i], r.val_loss[j]
  return table


def _group(method: Method, context: Context) -> Outcome:
  ts = context.taskset
  m = ts.num_tasks
  pairs = context.train([(i,) for i in range(m)]
                        + [(i, j) for i in range(m) for j in range(i + 1, m)])
  gains = Gains(ts.tasks, "hoa", hoa_gains(pair_table(pairs, m)), np.ones((m, m), int),
                {"table": "validation loss of pairs and singles"})
  gains.save(os.path.join(context.workdir, "gains_hoa.json"))
  start = time.perf_counter()
  grouping = solve_grouping(list(ts.tasks), gains.gains, method.objective,
                            context.config.constraints, overlap=method.overlap,
                            budget=context.budget,
                            time_limit_s=context.config.grouping_time_limit_s)
  seconds = {"collect": sum(r.seconds for r in pairs.values()),
             "group": time.perf_counter() - start}
  return Outcome(draws=(grouping.indices(),), grouping=grouping, gains=gains, seconds=seconds,
                 networks=m * (m - 1) // 2)  # the pairs; singles are the STL networks


HOA = Method(
    name="hoa",
    summary="trains every pair and single task; Standley's higher-order approximation; cover",
    group=_group, objective="hoa", overlap=True, needs_validation=True)
