"""Training many group networks at once, and scoring groupings."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from tgroup import data as data_lib
from tgroup import evaluate
from tgroup import train
from tgroup.errors import NonFiniteLossError


def train_alone(ts, mask, key, steps, data_seed):
  """One network the obvious way: a Python loop of jax.grad and optax steps, no vmap."""

  @jax.jit
  def step(params, opt_state, batch):
    grads = jax.grad(lambda p: jnp.dot(mask, ts.task_losses(p, batch)))(params)
    updates, opt_state = ts.optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params = ts.init_params(key)
  opt_state = ts.optimizer.init(params)
  batches = ts.train.train_batches(ts.batch_size, seed=data_seed)
  for _ in range(steps):
    params, opt_state = step(params, opt_state, next(batches))
  return params


def test_vmapped_networks_equal_networks_trained_alone(tiny):
  masks = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.float32)
  keys = jnp.stack([jax.random.key(3)] * 3)
  together = train.train_networks(tiny, masks, keys, steps=15, data_seed=1, quiet=True)
  for k in range(3):
    alone = train_alone(tiny, masks[k], jax.random.key(3), steps=15, data_seed=1)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[k], together.params), alone,
                                rtol=1e-5, atol=1e-6)


def test_a_group_network_ignores_other_tasks_labels(tiny):
  """The heads of tasks outside the group get no gradient and never reach the trunk."""
  noisy = np.array(tiny.train.labels)
  noisy[:, 3:] = np.random.default_rng(0).standard_normal(noisy[:, 3:].shape) * 100
  other = dataclasses.replace(tiny, train=data_lib.ArrayDataset(tiny.train.inputs, noisy))
  mask = np.array([[1, 1, 1, 0, 0, 0]], np.float32)
  keys = jnp.stack([jax.random.key(0)])
  a = train.train_networks(tiny, mask, keys, steps=10, data_seed=0, quiet=True)
  b = train.train_networks(other, mask, keys, steps=10, data_seed=0, quiet=True)
  chex.assert_trees_all_equal(a.params["trunk"], b.params["trunk"])


def test_evaluate_pads_the_last_batch_exactly(tiny):
  params = tiny.init_params(jax.random.key(0))
  loss, metric = train.evaluate(tiny, params, tiny.test, batch_size=24)  # 64 = 24 + 24 + 16
  preds = tiny.predict(params, tiny.test.inputs)
  np.testing.assert_allclose(loss, np.mean(tiny.sample_losses(preds, tiny.test.labels), 0),
                             rtol=1e-5)
  np.testing.assert_allclose(metric, np.mean(tiny.sample_metrics(preds, tiny.test.labels), 0),
                             rtol=1e-5)


def test_train_groups_averages_seeds_and_trains_each_group_once(tiny):
  res = evaluate.train_groups(tiny, [(0, 1), (1, 0), (2,)], seeds=(0, 1), steps=5,
                              chunk_size=2, quiet=True)
  assert sorted(res) == [(0, 1), (2,)]
  one = evaluate.train_groups(tiny, [(2,)], seeds=(0,), steps=5, quiet=True)
  two = evaluate.train_groups(tiny, [(2,)], seeds=(1,), steps=5, quiet=True)
  np.testing.assert_allclose(res[(2,)].test_loss[2],
                             (one[(2,)].test_loss[2] + two[(2,)].test_loss[2]) / 2, rtol=1e-5)


def test_score_grouping_serves_each_task_from_its_assigned_group(tiny):
  m = tiny.num_tasks
  fake = lambda g, v: evaluate.NetworkResult(g, np.full(m, v), np.full(m, 10 * v), None, None,
                                             1.0)
  results = {(0, 1, 2): fake((0, 1, 2), 1.0), (2, 3, 4, 5): fake((2, 3, 4, 5), 2.0)}
  scored = evaluate.score_grouping(tiny, [(0, 1, 2), (2, 3, 4, 5)],
                                   {0: 0, 1: 0, 2: 1, 3: 1, 4: 1, 5: 1}, results)
  assert scored["per_task"]["c0_t2"]["test_loss"] == 2.0  # served by its second group
  assert scored["total_test_loss"] == 1.0 * 2 + 2.0 * 4
  assert scored["total_test_error"] is None
  assert scored["train_seconds"] == 2.0


def test_delta_m_sign_and_direction():
  assert evaluate.delta_m([1, 1], [1, 1], False) == 0.0
  assert evaluate.delta_m([0.5, 0.5], [1, 1], False) == 50.0
  assert evaluate.delta_m([0.5, 0.5], [1, 1], True) == -50.0


def test_non_finite_loss_names_the_task_and_step():
  ts = dataclasses.replace(tiny_synthetic(), optimizer=optax.sgd(1e6))
  with pytest.raises(NonFiniteLossError, match=r"task 'c\d_t\d' by step \d+"):
    train.train_networks(ts, np.ones((1, ts.num_tasks), np.float32),
                         jnp.stack([jax.random.key(0)]), steps=20, data_seed=0, quiet=True,
                         log_every=5)
