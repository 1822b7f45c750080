"""Baselines that measure nothing: every task alone, one network for all, random groups.

STL's networks are always trained (they are Δm's reference); random partitions
take the run's number of groups, or the first grouping method's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tgroup.errors import UserError
from tgroup.grouping import Constraints
from tgroup.grouping.constraints import allowed_groups
from tgroup.methods.method import Context, Method, Outcome


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


def _stl(method: Method, context: Context) -> Outcome:
  return Outcome(draws=(([(i,) for i in range(context.taskset.num_tasks)], None),))


def _mtl_all(method: Method, context: Context) -> Outcome:
  return Outcome(draws=(([tuple(range(context.taskset.num_tasks))], None),))


def _random(method: Method, context: Context) -> Outcome:
  config = context.config
  k = config.constraints.num_groups or len(next(iter(context.groupings.values())).groups)
  draws = random_partitions(context.taskset.tasks, k, config.random_draws, config.collect.seed,
                            config.constraints)
  return Outcome(draws=tuple((p, None) for p in draws))


def _check_random(config, taskset) -> None:
  if config.random_draws < 1:
    raise UserError(f"random_draws must be >= 1, got {config.random_draws}")
  if config.constraints.num_groups is None and not any(
      not m.baseline for m in config.method_records()):
    raise UserError("random groupings need num_groups, or a grouping method whose group count "
                    "they copy")


STL = Method(name="stl", summary="every task alone", group=_stl, baseline=True)
MTL_ALL = Method(name="mtl_all", summary="one network for all tasks", group=_mtl_all,
                 baseline=True)
RANDOM = Method(
    name="random", summary="random partitions with the run's (or the first method's) number "
    "of groups; mean and spread over draws", group=_random, baseline=True, check=_check_random)
