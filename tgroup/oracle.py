"""Exhaustive ground truth for small m: train every task subset, rank every partition.

Affordable while 2^m − 1 networks fit the budget (m ≤ 9 trains 511 small
networks in minutes on a CPU). It is the yardstick of DESIGN §4: a grouping's
regret is its test total minus the best partition's with as many groups.
"""
from __future__ import annotations

import itertools
from typing import Iterator, Sequence

from tgroup import evaluate
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
