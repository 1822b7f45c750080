"""The one trainer: a jitted ``update_fn(state, batch) -> (state, losses)``.

A network is trained on the weighted sum of its task losses; a task group's
network is the full model with weight 1 on its tasks and 0 elsewhere (heads of
other tasks get no gradient and never touch the trunk). Several networks
(groups × seeds) train at once under ``vmap``, sharing every batch.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import progress
from tgroup.errors import NonFiniteLossError
from tgroup.tasks import TaskSet


class TrainState(NamedTuple):
  """A plain pytree: the step count, parameters and optimizer state."""
  step: jax.Array
  params: Any
  opt_state: Any


def init_state(taskset: TaskSet, key: jax.Array) -> TrainState:
  params = taskset.init_params(key)
  return TrainState(jnp.zeros((), jnp.int32), params, taskset.optimizer.init(params))


def make_update_fn(taskset: TaskSet):
  """``update_fn(state, batch, task_weights) -> (state, per-task losses)``, not jitted."""

  def update_fn(state: TrainState, batch, task_weights):
    def loss_fn(params):
      losses = taskset.task_losses(params, batch)
      return jnp.dot(task_weights, losses), losses

    grads, losses = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = taskset.optimizer.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), losses

  return update_fn


def make_eval_fn(taskset: TaskSet):
  """``eval_fn(params, batch) -> (loss sums, metric sums, weight)`` for one batch."""

  def eval_fn(params, batch):
    preds = taskset.predict(params, batch.inputs)
    w = jnp.asarray(batch.weights)
    return (w @ taskset.sample_losses(preds, batch.labels),
            w @ taskset.sample_metrics(preds, batch.labels), jnp.sum(w))

  return eval_fn


def evaluate(taskset: TaskSet, params, dataset, *, stacked: bool = False,
             batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Mean per-task loss and metric of ``params`` on ``dataset``.

  With ``stacked=True`` params carry a leading network axis and the results are
  ``(networks, m)``; otherwise ``(m,)``.
  """
  eval_fn = make_eval_fn(taskset)
  if stacked:
    eval_fn = jax.vmap(eval_fn, in_axes=(0, None))
  eval_fn = jax.jit(eval_fn)
  loss_sum = metric_sum = count = 0.0
  for batch in dataset.eval_batches(batch_size or taskset.batch_size):
    l, m, c = eval_fn(params, batch)
    loss_sum, metric_sum, count = loss_sum + l, metric_sum + m, count + c
  count = np.asarray(count)[..., None] if stacked else np.asarray(count)
  return np.asarray(loss_sum) / count, np.asarray(metric_sum) / count


def train_networks(taskset: TaskSet, task_weights: np.ndarray, init_keys: jax.Array, *,
                   steps: int, data_seed: int, quiet: bool = False, log_every: int = 100,
                   desc: str = "train") -> TrainState:
  """Trains ``n`` networks at once from scratch and returns their stacked states.

  Args:
    taskset: the problem.
    task_weights: ``(n, m)``; row k weights network k's task losses (a 0/1 group mask).
    init_keys: ``(n,)`` keys of the initial parameters (the same key gives the
      same initialisation: networks compared in one evaluation share it).
    steps: training steps of every network.
    data_seed: batch order, shared by all networks.
    quiet: no progress lines.
    log_every: steps between non-finite checks (a device sync) and progress.
    desc: progress label.

  Raises:
    NonFiniteLossError: a loss became NaN or infinite; names task and step.
  """
  task_weights = jnp.asarray(task_weights, jnp.float32)
  states = jax.vmap(lambda k: init_state(taskset, k))(init_keys)
  step_fn = jax.jit(jax.vmap(make_update_fn(taskset), in_axes=(0, None, 0)), donate_argnums=0)
  batches = taskset.train.train_batches(taskset.batch_size, seed=data_seed)
  bar = progress.Progress(steps, desc, quiet)
  for step in range(1, steps + 1):
    states, losses = step_fn(states, next(batches), task_weights)
    if step % log_every == 0 or step == steps:
      check_finite(taskset, np.asarray(losses), task_weights, step)
      bar.update(step)
  return states


def check_finite(taskset: TaskSet, losses: np.ndarray, task_weights, step: int) -> None:
  """Raises a clear error naming the first task whose trained loss is not finite."""
  bad = ~np.isfinite(losses) & (np.asarray(task_weights) > 0)
  if bad.any():
    task = taskset.tasks[int(np.argwhere(bad)[0][-1])]
    raise NonFiniteLossError(
        f"non-finite training loss for task {task!r} by step {step}; "
        "lower the learning rate or check the labels")
