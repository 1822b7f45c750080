"""Planted task clusters with known ground truth.

Each cluster c owns ``features_per_cluster`` random ReLU feature directions
``W_c``. Task t of cluster c reads them out with ``v_t = v_c + rho * eps_t``:
``y_t = standardise(v_t · relu(W_c x)) + noise``. Tasks of a cluster share
features (co-training them pools their supervision); clusters share nothing and
compete for the capacity of a narrow trunk. ``rho`` is the difficulty knob:
larger values make tasks within a cluster less alike.
"""
from __future__ import annotations

import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import models
from tgroup import tasks as tasks_lib


def make_data(num_clusters: int, tasks_per_cluster: int, *, rho: float, num_samples: int,
              input_dim: int, features_per_cluster: int, noise: float, seed: int,
              ) -> tuple[np.ndarray, np.ndarray]:
  """Inputs ``(n, input_dim)`` and labels ``(n, clusters * tasks_per_cluster)``.

  The ground truth (``W_c``, ``v_t``, label scaling) depends on ``seed`` only, so
  splits drawn with different ``num_samples`` share it: draw all splits in one call
  and slice.
  """
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((num_samples, input_dim)).astype(np.float32)
  labels = []
  for _ in range(num_clusters):
    w = rng.standard_normal((input_dim, features_per_cluster)) / np.sqrt(input_dim)
    feats = np.maximum(x @ w, 0.0)
    v_c = rng.standard_normal(features_per_cluster)
    for _ in range(tasks_per_cluster):
      v_t = v_c + rho * rng.standard_normal(features_per_cluster)
      y = feats @ v_t
      labels.append((y - y.mean()) / y.std())
  y = np.stack(labels, axis=1)
  y = y + noise * rng.standard_normal(y.shape)
  return x, y.astype(np.float32)


def task_names(num_clusters: int, tasks_per_cluster: int) -> list[str]:
  """``c0_t0, c0_t1, ..., c1_t0, ...``: the planted cluster is in the name."""
  return [f"c{c}_t{t}" for c in range(num_clusters) for t in range(tasks_per_cluster)]


@identity.records_definition
def synthetic(num_clusters: int = 3, tasks_per_cluster: int = 3, *, rho: float = 0.5,
              seed: int = 0, num_train: int = 2048, num_val: int = 1024, num_test: int = 4096,
              input_dim: int = 16, features_per_cluster: int = 24, noise: float = 0.3,
              trunk_width: int = 16, learning_rate: float = 0.02, momentum: float = 0.9,
              batch_size: int = 256, train_steps: int = 2000) -> tasks_lib.TaskSet:
  """The planted-cluster TaskSet (regression, MSE loss, MAE metric).

  Examples:
    >>> ts = synthetic(2, 2, num_train=256, num_val=64, num_test=64)
    >>> ts.tasks, ts.ground_truth_groups
    (('c0_t0', 'c0_t1', 'c1_t0', 'c1_t1'), (('c0_t0', 'c0_t1'), ('c1_t0', 'c1_t1')))
  """
  n = num_train + num_val + num_test
  x, y = make_data(num_clusters, tasks_per_cluster, rho=rho, num_samples=n, input_dim=input_dim,
                   features_per_cluster=features_per_cluster, noise=noise, seed=seed)
  split = lambda a, b: data_lib.ArrayDataset(x[a:b], y[a:b])
  names = task_names(num_clusters, tasks_per_cluster)
  return tasks_lib.TaskSet(
      name="synthetic",
      tasks=tuple(names),
      model=models.MultiTaskModel(models.MLPTrunk((trunk_width, trunk_width)),
                                  models.DenseHead(1), num_tasks=len(names)),
      sample_losses=tasks_lib.squared_error,
      sample_metrics=tasks_lib.absolute_error,
      train=split(0, num_train),
      val=split(num_train, num_train + num_val),
      test=split(num_train + num_val, n),
      optimizer=optax.sgd(learning_rate, momentum=momentum),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="mae",
      ground_truth_groups=tuple(tuple(names[c * tasks_per_cluster:(c + 1) * tasks_per_cluster])
                                for c in range(num_clusters)),
      description=(f"{num_clusters} planted clusters x {tasks_per_cluster} tasks, rho={rho}, "
                   f"seed={seed}"),
  )
