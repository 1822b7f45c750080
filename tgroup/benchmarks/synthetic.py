"""Planted task clusters with known ground truth.

Each cluster c owns ``features_per_cluster`` random ReLU feature directions
``W_c``. Task t of cluster c reads them out with ``v_t = v_c + rho * eps_t``:
``y_t = standardise(v_t · relu(W_c x)) + noise``. Tasks of a cluster share
features (co-training them pools their supervision); clusters share nothing and
compete for the capacity of a narrow trunk. ``rho`` is the difficulty knob:
larger values make tasks within a cluster less alike.

:func:`synthetic` plants equal clusters (a ReLU trunk, regression, SGD momentum);
:func:`planted` varies the structure: unequal families, a ReLU or tanh trunk,
regression or classification (the sign of each noisy target), per-task noise,
SGD momentum or Adam. Measured (tests/test_planted_variants.py, seed 0): the
planted partition is the best on validation for 2 families of 3 (ReLU,
regression, SGD), but 3 families of 2 as tanh classification with Adam overfit
at 1,024 training samples (single-task networks lose most, so larger groups
look better and the planted partition ranks 57th of 90); at 4,096 it ranks 2nd.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.errors import UserError


def _check_family_sizes(family_sizes: Sequence[int], min_families: int = 1) -> tuple[int, ...]:
  """``family_sizes`` as a tuple of ints; a one-line UserError unless each is >= 1."""
  try:
    sizes = tuple(family_sizes)
  except TypeError:
    raise UserError(f"family_sizes must be a sequence of task counts, got {family_sizes!r}"
                    ) from None
  if len(sizes) < min_families:
    raise UserError(f"need at least {min_families} families, got family_sizes={list(sizes)}")
  if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1
             for k in sizes):
    raise UserError(f"every family needs an integer size >= 1, got family_sizes={list(sizes)}")
  return tuple(int(k) for k in sizes)


def _per_task_noise(noise, num_tasks: int) -> np.ndarray:
  """``(num_tasks,)`` float64 noise scales from a scalar or one value per task.

  Examples:
    >>> _per_task_noise(0.5, 3).tolist()
    [0.5, 0.5, 0.5]
    >>> _per_task_noise([0.1, 0.2], 3)
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: noise has 2 values for 3 tasks: give one float or one value per task
  """
  if isinstance(noise, numbers.Real):
    scales = np.full(num_tasks, noise, dtype=np.float64)
  else:
    try:
      scales = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError):
      raise UserError(f"noise must be a float or one float per task, got {noise!r}") from None
    if scales.ndim != 1:
      raise UserError(f"noise must be a float or a flat sequence of one float per task, got "
                      f"shape {scales.shape}")
    if len(scales) != num_tasks:
      raise UserError(f"noise has {scales.size} values for {num_tasks} tasks: give one float or "
                      "one value per task")
  if not np.isfinite(scales).all() or (scales < 0).any():
    raise UserError(f"noise must be finite and >= 0, got {scales.tolist()}")
  return scales


def make_planted_data(family_sizes: Sequence[int], *, rho: float, num_samples: int,
                      input_dim: int, features_per_cluster: int, noise: float | Sequence[float],
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Inputs ``(n, input_dim)`` and labels ``(n, sum(family_sizes))`` of planted families.

  Family c has ``family_sizes[c]`` tasks reading out its own ReLU features
  ``W_c`` (see the module docstring). Labels are standardised over the
  ``num_samples`` drawn, then get Gaussian noise of scale ``noise``: one float
  for every task, or one value per task (column order).

  The ground truth (``W_c``, ``v_t``, label scaling) depends on ``seed`` only, so
  splits drawn with different ``num_samples`` share it: draw all splits in one call
  and slice. The random draws come in a fixed order (inputs; per family ``W_c``,
  ``v_c`` and its tasks' ``v_t``; then all noise at once), so equal family sizes
  give :func:`make_data`'s arrays bit for bit.

  Raises:
    UserError: no family, a family size < 1, a negative or non-finite noise, or
      per-task noise whose length is not the number of tasks.

  Examples:
    >>> x, y = make_planted_data((2, 1), rho=0.5, num_samples=100, input_dim=4,
    ...                          features_per_cluster=6, noise=[0.0, 0.0, 1.0], seed=0)
    >>> x.shape, y.shape, y.dtype
    ((100, 4), (100, 3), dtype('float32'))
    >>> np.round(y[:, :2].std(0), 3).tolist()  # noiseless tasks stay standardised
    [1.0, 1.0]
  """
  sizes = _check_family_sizes(family_sizes)
  scales = _per_task_noise(noise, sum(sizes))
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((num_samples, input_dim)).astype(np.float32)
  labels = []
  # Loops over families and tasks in NumPy, once per dataset, to keep the draw order.
  for size in sizes:
    w = rng.standard_normal((input_dim, features_per_cluster)) / np.sqrt(input_dim)
    feats = np.maximum(x @ w, 0.0)
    v_c = rng.standard_normal(features_per_cluster)
    for _ in range(size):
      v_t = v_c + rho * rng.standard_normal(features_per_cluster)
      y = feats @ v_t
      labels.append((y - y.mean()) / y.std())
  y = np.stack(labels, axis=1)
  y = y + scales * rng.standard_normal(y.shape)
  return x, y.astype(np.float32)


def make_data(num_clusters: int, tasks_per_cluster: int, *, rho: float, num_samples: int,
              input_dim: int, features_per_cluster: int, noise: float, seed: int,
              ) -> tuple[np.ndarray, np.ndarray]:
  """Inputs ``(n, input_dim)`` and labels ``(n, clusters * tasks_per_cluster)``.

  :func:`make_planted_data` with ``num_clusters`` equal families.
  """
  return make_planted_data((tasks_per_cluster,) * num_clusters, rho=rho,
                           num_samples=num_samples, input_dim=input_dim,
                           features_per_cluster=features_per_cluster, noise=noise, seed=seed)


def family_task_names(family_sizes: Sequence[int]) -> list[str]:
  """``c{family}_t{i}`` for every task, family by family.

  Examples:
    >>> family_task_names((2, 1))
    ['c0_t0', 'c0_t1', 'c1_t0']
  """
  return [f"c{c}_t{t}" for c, size in enumerate(family_sizes) for t in range(size)]


def task_names(num_clusters: int, tasks_per_cluster: int) -> list[str]:
  """``c0_t0, c0_t1, ..., c1_t0, ...``: the planted cluster is in the name."""
  return family_task_names((tasks_per_cluster,) * num_clusters)


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


TASK_KINDS = ("regression", "classification")
# Learning rate of each optimizer when the caller gives none.
DEFAULT_LEARNING_RATES = {"sgd": 0.02, "adam": 0.003}


@identity.records_definition
def planted(family_sizes: Sequence[int] = (3, 3), *, rho: float = 0.5, task: str = "regression",
            trunk_activation: str = "relu", optimizer: str = "sgd",
            noise: float | Sequence[float] = 0.3, seed: int = 0, num_train: int = 1024,
            num_val: int = 512, num_test: int = 2048, input_dim: int = 16,
            features_per_cluster: int = 24, trunk_width: int = 16,
            learning_rate: float | None = None, batch_size: int = 256,
            train_steps: int = 1000) -> tasks_lib.TaskSet:
  """Planted families of varied structure (:func:`make_planted_data`).

  Args:
    family_sizes: tasks per family (at least 2 families; sizes may differ).
    rho: how far tasks of a family are from each other (as :func:`synthetic`).
    task: "regression" (MSE loss, MAE metric) or "classification" (each task's
      label is whether its noisy standardised target is positive; cross-entropy
      loss on two logits, 0/1 error metric).
    trunk_activation: "relu" or "tanh" (the two-layer MLP trunk's nonlinearity).
    optimizer: "sgd" (momentum 0.9) or "adam".
    noise: label noise scale, one float or one value per task.
    seed: the ground truth and every split.
    num_train, num_val, num_test: split sizes.
    input_dim, features_per_cluster: the planted features.
    trunk_width: both trunk layers' width.
    learning_rate: None for the optimizer's default (:data:`DEFAULT_LEARNING_RATES`).
    batch_size, train_steps: every network's training.

  Raises:
    UserError: fewer than 2 families, a family size < 1, an unknown task,
      activation or optimizer, bad noise, or split sizes that cannot train.

  Examples:
    >>> ts = planted((2, 1), task="classification", noise=[0.1, 0.1, 0.5], num_train=64,
    ...              num_val=32, num_test=32, batch_size=32)
    >>> ts.tasks, ts.ground_truth_groups, ts.metric_name, ts.train.labels.dtype
    (('c0_t0', 'c0_t1', 'c1_t0'), (('c0_t0', 'c0_t1'), ('c1_t0',)), 'error', dtype('int32'))
  """
  sizes = _check_family_sizes(family_sizes, min_families=2)
  if task not in TASK_KINDS:
    raise UserError(f"unknown task {task!r}; valid: {', '.join(TASK_KINDS)}")
  if trunk_activation not in models.ACTIVATIONS:
    raise UserError(f"unknown trunk_activation {trunk_activation!r}; valid: "
                    f"{', '.join(models.ACTIVATIONS)}")
  if optimizer not in DEFAULT_LEARNING_RATES:
    raise UserError(f"unknown optimizer {optimizer!r}; valid: {', '.join(DEFAULT_LEARNING_RATES)}")
  if not rho >= 0:
    raise UserError(f"rho must be >= 0, got {rho}")
  if min(num_val, num_test, batch_size, train_steps, trunk_width) < 1:
    raise UserError("num_val, num_test, batch_size, train_steps and trunk_width must be >= 1, "
                    f"got {num_val}, {num_test}, {batch_size}, {train_steps}, {trunk_width}")
  if num_train < batch_size:
    raise UserError(f"num_train ({num_train}) must be at least the batch size ({batch_size})")
  lr = DEFAULT_LEARNING_RATES[optimizer] if learning_rate is None else learning_rate
  if not lr > 0:
    raise UserError(f"learning_rate must be > 0, got {lr}")
  n = num_train + num_val + num_test
  x, y = make_planted_data(sizes, rho=rho, num_samples=n, input_dim=input_dim,
                           features_per_cluster=features_per_cluster, noise=noise, seed=seed)
  if task == "classification":
    # y is standardised before the (symmetric) noise, so about half of every task is positive.
    y = (y > 0).astype(np.int32)
  split = lambda a, b: data_lib.ArrayDataset(x[a:b], y[a:b])
  names = family_task_names(sizes)
  ends = np.cumsum(sizes)
  regression = task == "regression"
  noise_text = (f"noise={noise:g}" if isinstance(noise, numbers.Real)
                else f"noise per task {[round(float(v), 4) for v in noise]}")
  return tasks_lib.TaskSet(
      name="planted",
      tasks=tuple(names),
      model=models.MultiTaskModel(
          models.MLPTrunk((trunk_width, trunk_width), activation=trunk_activation),
          models.DenseHead(1 if regression else 2), num_tasks=len(names)),
      sample_losses=tasks_lib.squared_error if regression else tasks_lib.softmax_cross_entropy,
      sample_metrics=tasks_lib.absolute_error if regression else tasks_lib.classification_error,
      train=split(0, num_train),
      val=split(num_train, num_train + num_val),
      test=split(num_train + num_val, n),
      optimizer=(optax.sgd(lr, momentum=0.9) if optimizer == "sgd" else optax.adam(lr)),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="mae" if regression else "error",
      metric_is_error=not regression,
      ground_truth_groups=tuple(tuple(names[end - size:end]) for size, end in zip(sizes, ends)),
      description=(f"planted families {list(sizes)}, rho={rho}, {task}, {trunk_activation} "
                   f"trunk {trunk_width}x2, {optimizer} lr={lr:g}, {noise_text}, "
                   f"{num_train} training samples, seed={seed}"),
  )
