"""Gains matrices with planted groups, for checking and timing the grouping solver.

Tasks of one cluster help each other (+1), tasks of different clusters hurt each
other (-1), and every entry gets independent N(0, noise) noise. At moderate noise
the planted clusters are the best partition, so a solver's answer and bound can be
checked against them at sizes beyond exhaustive enumeration.
"""
from __future__ import annotations

import numpy as np

from tgroup.errors import UserError


def planted_gains(num_clusters: int, tasks_per_cluster: int, noise: float,
                  seed: int) -> np.ndarray:
  """An (m, m) gains matrix, m = num_clusters * tasks_per_cluster, tasks in cluster order.

  ``gains[i, j]`` is +1 when tasks i and j share a cluster (the diagonal included) and -1
  otherwise, plus ``noise`` times a standard normal draw (seeded by `seed`).

  Examples:
    >>> g = planted_gains(2, 2, noise=0.0, seed=0)
    >>> g.tolist()
    [[1.0, 1.0, -1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], \
[-1.0, -1.0, 1.0, 1.0]]
    >>> planted_gains(3, 4, noise=0.3, seed=1).shape
    (12, 12)
  """
  for name, value in (("num_clusters", num_clusters), ("tasks_per_cluster", tasks_per_cluster)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise UserError(f"{name} must be a positive integer, got {value!r}")
  if not np.isfinite(noise) or noise < 0:
    raise UserError(f"noise must be a finite number >= 0, got {noise!r}")
  label = np.repeat(np.arange(num_clusters), tasks_per_cluster)
  gains = np.where(label[:, None] == label[None, :], 1.0, -1.0)
  return gains + noise * np.random.default_rng(seed).normal(size=gains.shape)


def planted_groups(num_clusters: int, tasks_per_cluster: int) -> list[tuple[int, ...]]:
  """The planted clusters of :func:`planted_gains` as task-index tuples.

  Examples:
    >>> planted_groups(2, 3)
    [(0, 1, 2), (3, 4, 5)]
  """
  return [tuple(range(c * tasks_per_cluster, (c + 1) * tasks_per_cluster))
          for c in range(num_clusters)]
