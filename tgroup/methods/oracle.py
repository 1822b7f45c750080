"""The oracle: train every task subset, select the groups on the measured table.

Affordable while 2^m − 1 networks fit the budget (m ≤ 9 trains 511 small
networks in minutes on a CPU). It is the yardstick of docs/design.md §4: every
method's regret is its test total minus that of the oracle's selection with as
many groups (:mod:`tgroup.regret`). The helpers here (every subset, every
partition, partitions ranked by a table) also serve the tests that check the
planted benchmark's structure.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Iterator, Sequence

from tgroup import evaluate
from tgroup import io
from tgroup.errors import UserError
from tgroup.grouping import solve_measured
from tgroup.methods.method import Context, Method, Outcome
from tgroup.tasks import TaskSet


def all_subsets(m: int) -> list[tuple[int, ...]]:
  """Every non-empty subset of ``range(m)``, by size then lexicographically."""
  return [s for r in range(1, m + 1) for s in itertools.combinations(range(m), r)]


def set_partitions(items: Sequence[int]) -> Iterator[list[tuple[int, ...]]]:
  """Every partition of ``items`` into non-empty blocks (Bell(n) of them).

  Examples:
    >>> sorted(sorted(p) for p in set_partitions([0, 1, 2]))[:2]
    [[(0,), (1,), (2,)], [(0,), (1, 2)]]
    >>> sum(1 for _ in set_partitions(range(5)))
    52
  """
  items = list(items)
  if not items:
    yield []
    return
  first, rest = items[0], items[1:]
  for part in set_partitions(rest):
    yield [(first,)] + part
    for k, block in enumerate(part):
      yield part[:k] + [(first,) + block] + part[k + 1:]


def subset_table(taskset: TaskSet, *, seeds: Sequence[int] = (0,), steps: int | None = None,
                 chunk_size: int = 16, quiet: bool = False, cache=None
                 ) -> dict[tuple[int, ...], evaluate.NetworkResult]:
  """Trains one network per non-empty task subset (same protocol as every group)."""
  return evaluate.train_groups(taskset, all_subsets(taskset.num_tasks), seeds=seeds,
                               steps=steps, chunk_size=chunk_size, quiet=quiet, cache=cache)


def ranked_partitions(table, m: int, num_groups: int | None = None, key: str = "test_loss"
                      ) -> list[tuple[float, list[tuple[int, ...]]]]:
  """Partitions (optionally with exactly ``num_groups`` blocks) by total ``key``, best first.

  A partition's total is the sum over tasks of each task's ``key`` on its block's
  network.
  """
  totals = {g: sum(float(getattr(r, key)[t]) for t in g) for g, r in table.items()}
  ranked = [(sum(totals[tuple(sorted(b))] for b in p), sorted(tuple(sorted(b)) for b in p))
            for p in set_partitions(range(m))
            if num_groups is None or len(p) == num_groups]
  return sorted(ranked, key=lambda x: x[0])


def validation_losses(table) -> dict:
  """``{group: (m,) validation losses}`` of a table of network results."""
  return {g: r.val_loss for g, r in table.items()}


def save_table(tasks: Sequence[str], table, path: str) -> None:
  """The table as JSON: every network's results, by group size then group."""
  io.write_json(path, {"tasks": list(tasks), "networks": [
      r.to_json() for _, r in sorted(table.items(), key=lambda kv: (len(kv[0]), kv[0]))]})


def _group(method: Method, context: Context) -> Outcome:
  ts = context.taskset
  table = context.train(all_subsets(ts.num_tasks))
  save_table(ts.tasks, table, os.path.join(context.workdir, "oracle", "table.json"))
  start = time.perf_counter()
  grouping = solve_measured(ts.tasks, validation_losses(table), context.config.constraints,
                            budget=context.budget)
  seconds = {"collect": sum(r.seconds for r in table.values()),
             "group": time.perf_counter() - start}
  return Outcome(draws=(grouping.indices(),), grouping=grouping, seconds=seconds, table=table,
                 networks=len(table) - ts.num_tasks)  # singles are the STL networks


def _check(config, taskset: TaskSet) -> None:
  networks = 2 ** taskset.num_tasks - 1
  if networks > config.max_oracle_networks:
    raise UserError(f"the oracle would train 2^{taskset.num_tasks} - 1 = {networks} networks, "
                    f"more than max_oracle_networks={config.max_oracle_networks}")


ORACLE = Method(
    name="oracle",
    summary="trains all 2^m - 1 task subsets, selects on the validation table; partition",
    group=_group, needs_validation=True, reference=True, check=_check)
