"""``TaskSet``: everything that defines a multi-task problem.

Every benchmark and every user problem is a TaskSet: task names, data whose
inputs are shared by all tasks with one label per task, a model with a shared
trunk and one head per task, per-sample losses and metrics, and a default optax
optimizer. The rest of the library (gain collection, grouping, evaluation) only
talks to a TaskSet through the methods below.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import models
from tgroup import one_shot
from tgroup.errors import UserError

def _init(model: nn.Module, key: jax.Array, inputs: jax.Array):
  return model.init(key, inputs)["params"]


_init_params = jax.jit(_init, static_argnums=0)
# Cheap to compile, equal to _init_params within float32 rounding (tgroup.one_shot).
_init_params_once = one_shot.jit_once(_init, static_argnums=0)


# (predictions, labels) -> per-sample, per-task values of shape (batch, m).
SampleFn = Callable[[Any, Any], jax.Array]


def squared_error(predictions, labels):
  """Per-sample squared error for ``(m, batch, 1)`` predictions, ``(batch, m)`` labels."""
  return jnp.square(predictions[..., 0].T - labels)


def absolute_error(predictions, labels):
  """Per-sample absolute error, same shapes as :func:`squared_error`."""
  return jnp.abs(predictions[..., 0].T - labels)


def softmax_cross_entropy(logits, labels):
  """Per-sample cross-entropy for ``(m, batch, classes)`` logits, ``(batch, m)`` int labels."""
  return optax.softmax_cross_entropy_with_integer_labels(
      jnp.moveaxis(logits, 0, 1), labels.astype(jnp.int32))


def classification_error(logits, labels):
  """Per-sample 0/1 error, same shapes as :func:`softmax_cross_entropy`."""
  return (jnp.argmax(logits, -1).T != labels).astype(jnp.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class TaskSet:
  """A multi-task learning problem.

  Attributes:
    name: benchmark name, written into reports.
    tasks: task names; index order is the order of every m-sized axis.
    model: a flax module; ``model.apply({"params": p}, inputs)`` gives predictions
      that ``sample_losses`` understands. Parameters must be a dict whose
      ``"trunk"`` entry is shared (see :class:`tgroup.models.MultiTaskModel`), or
      give ``shared_mask``.
    sample_losses: ``(predictions, labels) -> (batch, m)`` training losses.
    sample_metrics: ``(predictions, labels) -> (batch, m)`` test metric per sample;
      the reported metric is its mean over the test set.
    train, test: datasets (see :mod:`tgroup.data`); ``val`` optional.
    optimizer: the default optax optimizer of every network.
    batch_size: training batch size.
    train_steps: training steps of every network (and of the collection run).
    metric_name: e.g. ``"mae"`` or ``"error"``.
    metric_is_error: the metric is an error rate, so its sum over tasks is the
      reported ``total_test_error`` (CelebA-style).
    higher_is_better: direction of the metric (for Δm).
    shared_mask: ``params -> pytree of bool``, True where a parameter is shared.
    ground_truth_groups: planted groups (synthetic benchmarks only).
    description: one line for reports.

  Examples:
    >>> import numpy as np
    >>> ts = TaskSet(
    ...     name="toy", tasks=("a", "b"),
    ...     model=models.MultiTaskModel(models.MLPTrunk((4,)), models.DenseHead(1), 2),
    ...     sample_losses=squared_error, sample_metrics=absolute_error,
    ...     train=data_lib.ArrayDataset(np.ones((8, 3)), np.arange(16.0).reshape(8, 2)),
    ...     test=data_lib.ArrayDataset(np.ones((4, 3)), np.arange(8.0).reshape(4, 2)),
    ...     optimizer=optax.sgd(0.1), batch_size=4)
    >>> params = ts.init_params(jax.random.key(0))
    >>> batch = next(ts.train.train_batches(4, seed=0))
    >>> ts.task_losses(params, batch).shape
    (2,)
  """
  name: str
  tasks: tuple[str, ...]
  model: nn.Module
  sample_losses: SampleFn
  sample_metrics: SampleFn
  train: Any
  test: Any
  optimizer: optax.GradientTransformation
  val: Any = None
  batch_size: int = 256
  train_steps: int = 2000
  metric_name: str = "metric"
  metric_is_error: bool = False
  higher_is_better: bool = False
  shared_mask: Callable[[Any], Any] = models.trunk_mask
  ground_truth_groups: tuple[tuple[str, ...], ...] | None = None
  description: str = ""

  def __post_init__(self):
    object.__setattr__(self, "tasks", tuple(self.tasks))
    if len(set(self.tasks)) != len(self.tasks):
      raise UserError(f"task names must be unique, got {list(self.tasks)}")
    if not self.tasks:
      raise UserError("a TaskSet needs at least one task")
    for split in ("train", "val", "test"):
      _check_labels_vary(self.tasks, split, getattr(self, split))

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

  def task_index(self, names: Sequence[str]) -> list[int]:
    """Indices of task names, with a clear error for unknown names."""
    unknown = [n for n in names if n not in self.tasks]
    if unknown:
      raise UserError(f"unknown task(s) {unknown}; valid tasks: {list(self.tasks)}")
    return [self.tasks.index(n) for n in names]

  def init_params(self, key: jax.Array, *, once: bool = False):
    """Fresh parameters, shaped by one training sample.

    Compiled as one program: run eagerly, flax's init dispatches (and on first
    use compiles) every random draw and layer op on its own, which was measured
    at 4.7 s for the synthetic model against 1.8 s compiled, with bitwise-equal
    parameters. Falls back to eager init for a model that is not hashable.

    Args:
      key: PRNG key.
      once: compile for compile time (:mod:`tgroup.one_shot`), for callers
        that initialise once and never train, such as the landscape measure.
        Equal to the default within float32 rounding, not bitwise.
    """
    inputs = jnp.asarray(next(self.train.eval_batches(1)).inputs)
    try:
      hash(self.model)
    except TypeError:
      return self.model.init(key, inputs)["params"]
    return (_init_params_once if once else _init_params)(self.model, key, inputs)

  def predict(self, params, inputs):
    return self.model.apply({"params": params}, inputs)

  def task_losses(self, params, batch: data_lib.Batch) -> jax.Array:
    """Weighted mean training loss per task, shape ``(m,)``."""
    return _weighted_mean(self.sample_losses(self.predict(params, batch.inputs), batch.labels),
                          batch.weights)

  def task_metrics(self, params, batch: data_lib.Batch) -> jax.Array:
    """Weighted mean metric per task, shape ``(m,)``."""
    return _weighted_mean(self.sample_metrics(self.predict(params, batch.inputs), batch.labels),
                          batch.weights)


def _check_labels_vary(tasks: Sequence[str], split: str, dataset: Any) -> None:
  """A UserError naming the first task whose labels in ``split`` are all equal.

  Such a task has nothing to learn (train) or to tell networks apart with
  (val, test: a perfect STL metric of 0 makes Δm, a ratio to it, undefined), and
  any grouping of it is noise. Checked at construction, before any training,
  for datasets that hold their labels as an array (``labels``, task axis last,
  as :class:`tgroup.data.ArrayDataset`); a streaming dataset without one is not
  read here.

  Examples:
    >>> import numpy as np
    >>> labels = np.array([[0, 1], [1, 1], [0, 1]])
    >>> _check_labels_vary(("even", "small"), "test", data_lib.ArrayDataset(labels, labels))
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: task 'small' has constant labels in the test split (all 3 are 1): nothing to learn or compare; drop the task or fix its data
  """
  labels = getattr(dataset, "labels", None)
  if dataset is None or not hasattr(labels, "shape") or labels.shape[-1:] != (len(tasks),):
    return
  per_task = np.asarray(labels).reshape(-1, len(tasks))
  if not len(per_task):
    return
  constant = (per_task == per_task[:1]).all(axis=0)
  if constant.any():
    t = int(np.argmax(constant))
    value = per_task[0, t].item()
    raise UserError(f"task {tasks[t]!r} has constant labels in the {split} split (all "
                    f"{len(per_task)} are {value:g}): nothing to learn or compare; drop the "
                    "task or fix its data")


def _weighted_mean(per_sample: jax.Array, weights) -> jax.Array:
  weights = jnp.asarray(weights, per_sample.dtype)
  return weights @ per_sample / jnp.sum(weights)
