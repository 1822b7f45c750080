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
from tgroup import identity
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
    lookahead_losses: optional ``params -> (m,)`` positive task losses that
      lookahead steps are scored on, instead of the training loss on the step's
      batch: gains become ``1 − L_j(θ⁺)/L_j(θ)`` of this function while the steps
      themselves still follow the training loss's gradients. For problems whose
      training loss is a noisy estimator (REINFORCE) and whose objective is not
      differentiable (the routing benchmark scores greedy rollouts on a fixed
      validation set, :mod:`tgroup.benchmarks.cop`). None: the training loss.

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
  lookahead_losses: Callable[[Any], jax.Array] | None = None

  # The call that built this TaskSet (tgroup.identity.records_definition), or None.
  # Not an __init__ argument, so dataclasses.replace drops it: a modified copy
  # never passes for the original in a cache (see with_definition).
  definition: dict[str, Any] | None = dataclasses.field(default=None, init=False)

  def __post_init__(self):
    object.__setattr__(self, "tasks", tuple(self.tasks))
    if len(set(self.tasks)) != len(self.tasks):
      raise UserError(f"task names must be unique, got {list(self.tasks)}")
    if not self.tasks:
      raise UserError("a TaskSet needs at least one task")
    for split in ("train", "val", "test"):
      _check_label_columns(self.tasks, split, getattr(self, split))
      _check_labels_vary(self.tasks, split, getattr(self, split))
    object.__setattr__(self, "_checked", False)

  def with_definition(self, definition: dict[str, Any]) -> "TaskSet":
    """A copy that carries ``definition``, the JSON settings that define this problem.

    Saved gains and networks are reused (and collection checkpoints resumed)
    only for a TaskSet with a definition, and only for the same definition:
    give one that changes whenever the data, model, losses or optimizer do.
    Benchmark factories set it themselves (:func:`tgroup.identity.records_definition`).

    Examples:
      >>> from tgroup.benchmarks.synthetic import synthetic
      >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
      >>> mine = dataclasses.replace(ts, batch_size=16)   # a copy: no definition
      >>> mine.definition is None
      True
      >>> mine.with_definition({"data": "v1", "batch_size": 16}).definition["data"]
      'v1'
    """
    copy = dataclasses.replace(self)
    object.__setattr__(copy, "definition", identity.canonical(dict(definition)))
    return copy

  def check(self) -> None:
    """Checks that model, losses and labels fit together; once per TaskSet.

    Shapes only (``jax.eval_shape`` on one small training batch): nothing is
    initialised, trained or compiled. Called by every entry point that uses a
    TaskSet (the pipeline, gain collection, the landscape pass, training).

    Raises:
      UserError: one line naming the problem: labels without one column per
        task, a model that keeps mutable state (BatchNorm statistics), no
        shared parameters, predictions without the batch's size, or a loss
        or metric whose output is not ``(batch, m)``.
    """
    if not self._checked:
      _check_shapes(self)
      object.__setattr__(self, "_checked", True)

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

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
    inputs = jax.tree.map(jnp.asarray, next(self.train.eval_batches(1)).inputs)
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


def _check_label_columns(tasks: Sequence[str], split: str, dataset: Any) -> None:
  """A UserError unless a dataset's label array has one column per task, last.

  Read only from datasets that hold their labels as an array (``labels``, as
  :class:`tgroup.data.ArrayDataset`); others are checked on their first batch
  by :meth:`TaskSet.check`.

  Examples:
    >>> import numpy as np
    >>> _check_label_columns(("a", "b"), "train", data_lib.ArrayDataset(np.zeros((5, 3)),
    ...                                                                  np.zeros(5)))
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: the train labels have shape (5,), with no task axis: expected \
(samples, ..., 2), one column per task (a, b) on the last axis
  """
  labels = getattr(dataset, "labels", None)
  if dataset is None or not hasattr(labels, "shape"):
    return
  _check_label_shape(tasks, f"the {split} labels", np.shape(labels), "samples")


def _check_label_shape(tasks: Sequence[str], what: str, shape: tuple[int, ...],
                       leading: str) -> None:
  m = len(tasks)
  if len(shape) >= 2 and shape[-1] == m:
    return
  names = ", ".join(tasks) if m <= 8 else ", ".join(tasks[:8]) + ", ..."
  problem = ("with no task axis" if len(shape) < 2
             else f"{shape[-1]} columns on the last axis for {m} tasks")
  raise UserError(f"{what} have shape {tuple(shape)}, {problem}: expected ({leading}, ..., {m}), "
                  f"one column per task ({names}) on the last axis")


def _check_shapes(ts: TaskSet) -> None:
  """The checks of :meth:`TaskSet.check`: abstract shapes of one small batch."""
  m = ts.num_tasks
  # A batch size unlike m, so an output of shape (m, batch) cannot pass for (batch, m).
  b = 3 if m == 2 else 2
  batch = next(iter(ts.train.eval_batches(b)))
  _check_label_shape(ts.tasks, f"labels of a {b}-sample training batch", np.shape(batch.labels),
                     "batch")
  inputs = jax.tree.map(np.asarray, batch.inputs)
  # The key is made inside the trace: a concrete one would compile a program.
  variables = jax.eval_shape(lambda x: ts.model.init(jax.random.key(0), x), inputs)
  # "intermediates" holds values a module sows for inspection, not state.
  state = sorted(set(variables) - {"params", "intermediates"})
  if state:
    raise UserError(f"the model keeps mutable state in {state} (e.g. BatchNorm statistics): "
                    "lookahead steps and per-sample gradients cannot carry it; use GroupNorm or "
                    "LayerNorm instead")
  params = variables["params"]
  if not any(bool(x) for x in jax.tree.leaves(ts.shared_mask(params))):
    top = sorted(params) if isinstance(params, dict) else type(params).__name__
    raise UserError(f"no parameter is shared between tasks: the parameters' top-level entries "
                    f"are {top}, with no 'trunk', and shared_mask marks none shared; put the "
                    "shared layers under 'trunk' (tgroup.models.MultiTaskModel does) or give "
                    "TaskSet.shared_mask")
  preds = jax.eval_shape(lambda p, x: ts.model.apply({"params": p}, x), params, inputs)
  shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(preds)]
  if not shapes or not all(b in shape for shape in shapes):
    raise UserError(f"the model's predictions for a batch of {b} samples have shape(s) "
                    f"{shapes or 'none'}, with no axis of size {b}: predictions must keep the "
                    "batch axis")
  for name, fn in (("sample_losses", ts.sample_losses), ("sample_metrics", ts.sample_metrics)):
    try:
      out = jax.eval_shape(fn, preds, batch.labels)
    except (TypeError, ValueError) as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise UserError(f"{name} fails on predictions of shape(s) {shapes} and labels of shape "
                      f"{tuple(np.shape(batch.labels))}: {first}") from None
    got = tuple(getattr(out, "shape", ()))
    if got != (b, m):
      hint = " (transposed?)" if got == (m, b) else ""
      raise UserError(f"{name} returned shape {got}{hint} for a batch of {b} samples and {m} "
                      f"tasks: it must return one value per sample and task, shape (batch, m) "
                      f"= ({b}, {m})")


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
  if dataset is None or not hasattr(labels, "shape"):
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
