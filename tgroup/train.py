"""The one trainer: a jitted ``update_fn(state, batch, task_weights) -> (state, losses)``.

A network is trained on the weighted sum of its task losses; a task group's
network is the full model with weight 1 on its tasks and 0 elsewhere (heads of
other tasks get no gradient and never touch the trunk). Several networks
(groups × seeds) train at once under ``vmap``, sharing every batch.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import optax

from tgroup import mesh as mesh_lib
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
             batch_size: int | None = None, mesh: Mesh | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
  """Mean per-task loss and metric of ``params`` on ``dataset``.

  With ``stacked=True`` params carry a leading network axis and the results are
  ``(networks, m)``; otherwise ``(m,)``. With a ``mesh`` each batch is split over
  its ``data`` axis (and stacked params over ``networks``).
  """
  eval_fn = make_eval_fn(taskset)
  if stacked:
    eval_fn = jax.vmap(eval_fn, in_axes=(0, None))
  eval_fn = jax.jit(eval_fn)
  if mesh is not None:
    params = mesh_lib.put(params, mesh_lib.leading(mesh, "networks") if stacked
                          else mesh_lib.replicated(mesh))
  batch_size = batch_size or taskset.batch_size
  batches = mesh_lib.read(functools.partial(dataset.eval_batches, batch_size),
                          mesh_lib.load_rows(mesh, batch_size))
  loss_sum = metric_sum = count = 0.0
  for batch in batches:
    l, m, c = mesh_lib.settle(eval_fn(params, mesh_lib.put_batch(batch, mesh, batch_size)), mesh)
    loss_sum, metric_sum, count = loss_sum + l, metric_sum + m, count + c
  loss_sum, metric_sum, count = mesh_lib.fetch((loss_sum, metric_sum, count))
  count = count[..., None] if stacked else count
  return loss_sum / count, metric_sum / count


def train_networks(taskset: TaskSet, task_weights: np.ndarray, init_keys: jax.Array, *,
                   steps: int, data_seed: int, quiet: bool = False, log_every: int = 100,
                   desc: str = "train", mesh: Mesh | None = None) -> TrainState:
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
    mesh: split the networks over its ``networks`` axis and every batch over
      its ``data`` axis (:mod:`tgroup.mesh`); None: one device.

  Raises:
    NonFiniteLossError: a loss became NaN or infinite; names the task, the step
      and the network's group.
  """
  groups = np.asarray(task_weights, np.float32)  # the host's copy, for messages
  task_weights = jnp.asarray(groups)
  states = jax.vmap(lambda k: init_state(taskset, k))(init_keys)
  if mesh is not None:
    states, task_weights = mesh_lib.put((states, task_weights), mesh_lib.leading(mesh, "networks"))
  step_fn = jax.jit(jax.vmap(make_update_fn(taskset), in_axes=(0, None, 0)), donate_argnums=0)
  batches = mesh_lib.read(
      functools.partial(taskset.train.train_batches, taskset.batch_size, seed=data_seed),
      mesh_lib.load_rows(mesh, taskset.batch_size))
  bar = progress.Progress(steps, desc, quiet)
  for step in range(1, steps + 1):
    states, losses = mesh_lib.settle(
        step_fn(states, mesh_lib.put_batch(next(batches), mesh, taskset.batch_size),
                task_weights), mesh)
    if step % log_every == 0 or step == steps:
      check_finite(taskset, mesh_lib.fetch(losses), groups, step, context=f"seed {data_seed}")
      bar.update(step)
  return states


def all_task_params(taskset: TaskSet, steps: int, seed: int):
  """The parameters of the all-task network after ``steps`` training steps.

  Initialised from ``key(seed)`` and fed the batches of ``seed``, as a group
  network of every task would be (a warm-up θ_0 for the landscape measure).
  """
  state = train_networks(taskset, np.ones((1, taskset.num_tasks)), jax.random.key(seed)[None],
                         steps=steps, data_seed=seed, quiet=True)
  return jax.tree.map(lambda x: x[0], state.params)


def check_finite(taskset: TaskSet, losses: np.ndarray, task_weights, step: int,
                 context: str = "") -> None:
  """Raises a clear error naming the first trained task whose loss is not finite.

  Args:
    taskset: the problem (task names).
    losses: ``(m,)`` or ``(networks, m)`` per-task training losses.
    task_weights: like ``losses``; a row's nonzero entries are the network's group.
    step: the training step the losses belong to (for the message).
    context: which run, for the message (e.g. ``seed 0``).

  Raises:
    NonFiniteLossError: names the task, the step and the network's group.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(1, 3, num_train=64, num_val=16, num_test=16, batch_size=16)
    >>> try:
    ...   check_finite(ts, np.array([[1.0, 2.0, 3.0], [0.5, np.nan, np.inf]]),
    ...                np.array([[1, 1, 1], [0, 1, 1]]), 300, context="seed 0")
    ... except NonFiniteLossError as e:
    ...   print(str(e).split("; ")[0])
    non-finite training loss for task 'c0_t1' by step 300 (network of group {c0_t1, c0_t2}, seed 0)
  """
  losses, weights = np.asarray(losses), np.asarray(task_weights)
  bad = ~np.isfinite(losses) & (weights > 0)
  if not bad.any():
    return
  where = tuple(np.argwhere(bad)[0])
  task = taskset.tasks[int(where[-1])]
  row = np.broadcast_to(weights, losses.shape)[where[:-1]]
  group = [taskset.tasks[i] for i in np.flatnonzero(row > 0)]
  network = (f"network of all {len(group)} tasks" if len(group) == taskset.num_tasks > 1
             else f"network of group {{{', '.join(group)}}}")
  detail = ", ".join(x for x in (network, context) if x)
  raise NonFiniteLossError(
      f"non-finite training loss for task {task!r} by step {step} ({detail}); "
      "lower the learning rate or check the labels")
