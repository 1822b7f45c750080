"""A user's own TaskSet is checked before any work: one clear UserError per mistake.

Each case is a mistake a new user makes with their own model, losses or data;
before these checks they surfaced as an all-zero gain matrix, a flax scope
error or a JAX shape error from deep inside the library.
"""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from launch import bench_timing
from tgroup import data as data_lib
from tgroup import evaluate
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, collect_gains
from tgroup.grouping import Constraints
from tgroup.landscape import landscape_dissimilarity
from tgroup.pipeline import PipelineConfig, run_pipeline


def taskset(**changes):
  """A small valid TaskSet of 3 regression tasks; ``changes`` replace its fields."""
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.normal(size=(40, 3)).astype(np.float32)
  fields = dict(
      name="mine", tasks=("a", "b", "c"),
      model=models.MultiTaskModel(models.MLPTrunk((8,)), models.DenseHead(1), 3),
      sample_losses=tasks_lib.squared_error, sample_metrics=tasks_lib.absolute_error,
      train=data_lib.ArrayDataset(x[:32], y[:32]), test=data_lib.ArrayDataset(x[32:], y[32:]),
      val=data_lib.ArrayDataset(x[32:], y[32:]), optimizer=optax.sgd(0.1), batch_size=8,
      train_steps=5)
  fields.update(changes)
  return tasks_lib.TaskSet(**fields)


def test_a_valid_taskset_passes_without_compiling_anything():
  ts = taskset()
  with bench_timing.compile_stage_seconds() as stages:
    ts.check()
  assert stages.seconds()["compile_s"] == 0.0 and stages.seconds()["trace_s"] > 0


class NoTrunk(nn.Module):
  """Shared layers under another name than 'trunk'."""

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Dense(8, name="body")(x))
    return jnp.stack([nn.Dense(1, name=f"head{t}")(h) for t in range(3)])


def test_parameters_without_a_shared_part():
  with pytest.raises(UserError, match=r"no parameter is shared between tasks: the parameters' "
                     r"top-level entries are \['body', 'head0', 'head1', 'head2'\], with no "
                     r"'trunk'"):
    taskset(model=NoTrunk()).check()
  # The same model with the shared part named by shared_mask is fine.
  mask = lambda params: {k: jax.tree.map(lambda _: k == "body", v) for k, v in params.items()}
  taskset(model=NoTrunk(), shared_mask=mask).check()


@pytest.mark.parametrize("fn, shape", [
    (lambda p, y: tasks_lib.squared_error(p, y).T, r"\(3, 2\) \(transposed\?\)"),
    (lambda p, y: tasks_lib.squared_error(p, y).sum(1), r"\(2,\)"),
    (lambda p, y: tasks_lib.squared_error(p, y).mean(), r"\(\)"),
])
@pytest.mark.parametrize("field", ["sample_losses", "sample_metrics"])
def test_a_loss_or_metric_that_is_not_batch_by_tasks(fn, shape, field):
  with pytest.raises(UserError, match=rf"{field} returned shape {shape} for a batch of 2 samples "
                     r"and 3 tasks: it must return one value per sample and task"):
    taskset(**{field: fn}).check()


def test_the_batch_size_of_the_check_differs_from_the_number_of_tasks():
  """With 2 tasks a (tasks, batch) output must not pass for (batch, tasks)."""
  ts = tiny_synthetic(1, 2)
  bad = dataclasses.replace(ts, sample_losses=lambda p, y: tasks_lib.squared_error(p, y).T)
  with pytest.raises(UserError, match=r"returned shape \(2, 3\) \(transposed\?\) for a batch "
                     r"of 3 samples and 2 tasks"):
    bad.check()


def test_labels_without_a_task_axis_fail_when_built():
  x = np.zeros((10, 5), np.float32)
  with pytest.raises(UserError, match=r"the train labels have shape \(10,\), with no task axis: "
                     r"expected \(samples, \.\.\., 3\), one column per task \(a, b, c\)"):
    taskset(train=data_lib.ArrayDataset(x, np.arange(10.0)))
  with pytest.raises(UserError, match=r"the test labels have shape \(10, 2\), 2 columns on the "
                     r"last axis for 3 tasks"):
    taskset(test=data_lib.ArrayDataset(x, np.ones((10, 2))))


class Stream:
  """A user's own loader: batches only, no label array to look at when built."""

  def __init__(self, labels_shape):
    self.labels_shape = labels_shape

  def __len__(self):
    return 32

  def train_batches(self, batch_size, seed):
    while True:
      yield from self.eval_batches(batch_size)

  def eval_batches(self, batch_size):
    yield data_lib.Batch(np.zeros((batch_size, 5), np.float32),
                         np.zeros((batch_size,) + self.labels_shape, np.float32),
                         np.ones(batch_size, np.float32))


def test_labels_of_a_streamed_batch_are_checked_on_first_use():
  ts = taskset(train=Stream(()))  # accepted when built: the labels are not visible yet
  with pytest.raises(UserError, match=r"labels of a 2-sample training batch have shape \(2,\), "
                     r"with no task axis"):
    ts.check()
  taskset(train=Stream((3,))).check()


class BatchMean(nn.Module):
  """A trunk that averages over the batch: predictions lose the batch axis."""

  @nn.compact
  def __call__(self, x):
    return nn.Dense(8)(x).mean(0, keepdims=True)


def test_predictions_must_keep_the_batch_size():
  model = models.MultiTaskModel(BatchMean(), models.DenseHead(1), 3)
  with pytest.raises(UserError, match=r"the model's predictions for a batch of 2 samples have "
                     r"shape\(s\) \[\(3, 1, 1\)\], with no axis of size 2"):
    taskset(model=model).check()


class BatchNormTrunk(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.relu(nn.BatchNorm(use_running_average=False)(nn.Dense(8)(x)))


def test_a_model_with_mutable_state_is_refused_with_the_alternative():
  model = models.MultiTaskModel(BatchNormTrunk(), models.DenseHead(1), 3)
  with pytest.raises(UserError, match=r"the model keeps mutable state in \['batch_stats'\] .*use "
                     r"GroupNorm or LayerNorm instead"):
    taskset(model=model).check()


def test_a_loss_that_cannot_read_the_labels_names_both_shapes():
  ts = taskset(sample_losses=lambda p, y: jnp.square(p[..., 0] - y))  # (3, 2) - (2, 3)
  with pytest.raises(UserError, match=r"sample_losses fails on predictions of shape\(s\) "
                     r"\[\(3, 2, 1\)\] and labels of shape \(2, 3\): "):
    ts.check()


def test_every_entry_point_checks_the_taskset(tmp_path):
  bad = taskset(sample_losses=lambda p, y: tasks_lib.squared_error(p, y).T)
  calls = [lambda: collect_gains(bad, CollectConfig(steps=1, quiet=True)),
           lambda: landscape_dissimilarity(bad, num_samples=8, batch_size=8),
           lambda: evaluate.train_groups(bad, [(0,)], steps=1, quiet=True),
           lambda: run_pipeline(bad, PipelineConfig(constraints=Constraints(num_groups=2),
                                                    quiet=True), str(tmp_path))]
  for call in calls:
    with pytest.raises(UserError, match=r"sample_losses returned shape \(3, 2\)"):
      call()


def test_grouping_needs_two_tasks(tmp_path):
  one = taskset(tasks=("a",), model=models.MultiTaskModel(models.MLPTrunk((8,)),
                                                          models.DenseHead(1), 1),
                train=data_lib.ArrayDataset(np.zeros((32, 5)), np.arange(32.0)[:, None]),
                test=data_lib.ArrayDataset(np.zeros((8, 5)), np.arange(8.0)[:, None]),
                val=None)
  one.check()  # a one-task TaskSet is fine for training
  with pytest.raises(UserError, match=r"grouping needs at least two tasks; the TaskSet has only "
                     r"'a'"):
    run_pipeline(one, PipelineConfig(methods=("stl",)), str(tmp_path))
  with pytest.raises(UserError, match=r"gains between tasks need at least two tasks"):
    collect_gains(one, CollectConfig(steps=1, quiet=True))
  with pytest.raises(UserError, match=r"needs at least two tasks"):
    landscape_dissimilarity(one, num_samples=8, batch_size=8)
  with pytest.raises(UserError, match="at least one task"):
    taskset(tasks=())
