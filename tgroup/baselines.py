"""Baseline groupings that need no measurement: random partitions."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tgroup.errors import UserError
from tgroup.grouping import Constraints
from tgroup.grouping.constraints import allowed_groups


def random_partitions(tasks: Sequence[str], num_groups: int, draws: int, seed: int,
                      constraints: Constraints = Constraints(), max_tries: int = 100_000
                      ) -> list[list[tuple[int, ...]]]:
  """Up to ``draws`` distinct random partitions into ``num_groups`` non-empty groups.

  Each task picks a group uniformly at random; draws with an empty group, a
  group the constraints forbid, or a partition already drawn are rejected (so
  each draw is uniform over the allowed labelled assignments not yet drawn).
  Fewer come back only when fewer distinct partitions exist.

  Examples:
    >>> parts = random_partitions("abcd", 2, draws=3, seed=0)
    >>> len(parts), all(sorted(t for g in p for t in g) == [0, 1, 2, 3] for p in parts)
    (3, True)
  """
  m = len(tasks)
  if not 1 <= num_groups <= m:
    raise UserError(f"random groupings need 1 <= num_groups <= {m}, got {num_groups}")
  rng = np.random.default_rng([seed, 0x72616E64])  # a stream of its own ("rand")
  out = []
  for _ in range(max_tries):
    labels = rng.integers(num_groups, size=m)
    membership = np.stack([labels == k for k in range(num_groups)])
    if membership.sum(axis=1).min() == 0:
      continue
    if not allowed_groups(membership, tasks, constraints).all():
      continue
    partition = sorted(tuple(np.flatnonzero(row).tolist()) for row in membership)
    if partition not in out:
      out.append(partition)
    if len(out) == draws:
      return out
  if out:
    return out
  raise UserError(f"could not draw {draws} random partitions into {num_groups} groups that "
                  f"satisfy the constraints in {max_tries} tries")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman rank correlation of two equal-length vectors (average ranks for ties).

  Examples:
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
  """
  def ranks(x):
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
      r[x == v] = r[x == v].mean()
    return r
  ra, rb = ranks(a), ranks(b)
  ra, rb = ra - ra.mean(), rb - rb.mean()
  denom = np.sqrt((ra @ ra) * (rb @ rb))
  return float(ra @ rb / denom) if denom > 0 else 0.0
