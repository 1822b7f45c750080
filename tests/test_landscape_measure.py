"""The landscape dissimilarity's fast path against a slow reference that materialises
every per-sample, per-task gradient with one ``jax.grad`` per sample and task."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conftest import tiny_synthetic
from tgroup import data as data_lib
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.landscape import measure


def reference(taskset, params, inputs, labels):
  """mean_x ‖∇ℓ_i(x) − ∇ℓ_j(x)‖_1, one gradient per (sample, task)."""
  m = taskset.num_tasks
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  total = np.zeros((m, m))
  for x, y in zip(inputs, labels):
    grads = [flat(jax.grad(lambda p, t=t: taskset.sample_losses(
        taskset.predict(p, x[None]), y[None])[0, t])(params)) for t in range(m)]
    total += np.array([[np.abs(gi - gj).sum() for gj in grads] for gi in grads])
  return total / len(inputs)


class ConvTrunk(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
    return nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1)))


class SharedTwiceTrunk(nn.Module):
  """One dense layer applied twice (its per-sample gradient is a sum of two outer products)
  and one applied to a sequence: neither factorises, both must take the exact path."""
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(6)
    h = nn.relu(dense(nn.relu(dense(x))))
    seq = nn.Dense(3)(h.reshape(h.shape[0], 2, 3))
    return seq.reshape(seq.shape[0], -1)


def small_taskset(trunk, inputs, m=3, seed=0, sample_losses=tasks_lib.squared_error):
  rng = np.random.default_rng(seed)
  labels = rng.standard_normal((len(inputs), m)).astype(np.float32)
  ds = data_lib.ArrayDataset(inputs, labels)
  return tasks_lib.TaskSet(
      name="small", tasks=tuple(f"t{i}" for i in range(m)),
      model=models.MultiTaskModel(trunk, models.DenseHead(1), m),
      sample_losses=sample_losses, sample_metrics=tasks_lib.absolute_error,
      train=ds, test=ds, optimizer=optax.sgd(0.1), batch_size=8)


def coupled(sample_losses):
  """Task t's loss also reads task t-1's prediction: gradients leak onto other heads."""
  def losses(predictions, labels):
    own = sample_losses(predictions, labels)
    return own + 0.5 * jnp.roll(own, 1, axis=1)
  return losses


coupled_squared_error = coupled(tasks_lib.squared_error)


def weighted_vector_error(predictions, labels):
  """Per-sample losses for ``(m, B, C)`` predictions and ``(B, m)`` labels (C > 1 outputs
  per head): a squared error against the label, the C outputs weighted 1, 2, 3, ..."""
  err = jnp.square(predictions - labels.T[..., None])
  return (err * (1.0 + jnp.arange(err.shape[-1]))).sum(-1).T


def three_output_taskset():
  rng = np.random.default_rng(7)
  inputs = rng.standard_normal((12, 4)).astype(np.float32)
  ts = small_taskset(models.MLPTrunk((5,)), inputs, sample_losses=weighted_vector_error)
  return dataclasses.replace(ts, model=models.MultiTaskModel(models.MLPTrunk((5,)),
                                                             models.DenseHead(3), 3))


CASES = {
    "mlp": lambda: tiny_synthetic(2, 2),
    "cnn": lambda: small_taskset(ConvTrunk(), np.random.default_rng(1).standard_normal(
        (12, 6, 6, 1)).astype(np.float32)),
    "dense_shared_and_on_sequences": lambda: small_taskset(
        SharedTwiceTrunk(), np.random.default_rng(2).standard_normal((12, 6)).astype(np.float32)),
    "losses_coupled_across_tasks": lambda: small_taskset(
        models.MLPTrunk((5,)), np.random.default_rng(4).standard_normal((12, 4)).astype(np.float32),
        sample_losses=coupled_squared_error),
    "three_outputs_per_head": three_output_taskset,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", ["fast", "materialized"])
def test_matches_the_materialised_reference(case, method):
  ts = CASES[case]()
  n = 12
  params = ts.init_params(jax.random.key(3))
  got = measure.landscape_dissimilarity(ts, num_samples=n, params=params, batch_size=8,
                                        method=method)
  want = reference(ts, params, ts.train.inputs[:n], ts.train.labels[:n])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * np.abs(want).max())
  assert np.abs(want).max() > 1e-3


@pytest.mark.parametrize("case", sorted(CASES))
def test_shared_head_path_matches_the_materialised_reference(case):
  """Identical heads (the default θ_0): one backward pass per head output, exact."""
  ts = CASES[case]()
  params = measure.same_heads(ts.init_params(jax.random.key(3)))
  assert measure.identical_heads(ts, params)
  got = measure.landscape_dissimilarity(ts, num_samples=12, params=params, batch_size=8)
  want = reference(ts, params, ts.train.inputs[:12], ts.train.labels[:12])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * np.abs(want).max())
  assert np.abs(want).max() > 1e-3
  batch = next(ts.train.eval_batches(8))
  shared, shared_leak = measure._jitted(ts, params, batch, "fast", shared_head=True)
  per_task, leak = measure._jitted(ts, params, batch, "fast", shared_head=False)
  np.testing.assert_allclose(shared, per_task, rtol=1e-5, atol=1e-7 * float(np.abs(per_task).max()))
  np.testing.assert_allclose(shared_leak, leak, rtol=1e-5)


def test_identical_heads_is_checked_on_the_values():
  ts = tiny_synthetic(2, 2)
  params = ts.init_params(jax.random.key(0))
  assert not measure.identical_heads(ts, params)
  same = measure.same_heads(params)
  assert measure.identical_heads(ts, same)
  nudged = jax.tree.map(np.array, same)
  nudged["heads"]["Dense_0"]["bias"][-1] += 1e-6
  assert not measure.identical_heads(ts, nudged)
  # Not a MultiTaskModel: the per-task path, whatever the parameters look like.
  assert not measure.identical_heads(dataclasses.replace(ts, model=models.MLPTrunk((4,))), same)


def test_fast_path_factorises_the_dense_layers_of_the_mlp():
  ts = tiny_synthetic(2, 2)
  params = ts.init_params(jax.random.key(0))
  batch = next(ts.train.eval_batches(8))
  inputs, _ = measure._dense_layers(ts, params, batch)
  modules = {p[:-1] for p in measure._flatten(inputs)}
  # Every parameter belongs to a factorised layer: nothing is left for the exact path.
  assert modules == {("trunk", "Dense_0"), ("trunk", "Dense_1"), ("heads", "Dense_0")}


@pytest.mark.parametrize("case", ["mlp", "cnn", "losses_coupled_across_tasks"])
def test_task_head_shortcut_is_checked_and_exact(case):
  """Per-task heads: m norms stand in for m² differences only where no task's
  gradient reaches another task's head; the leak says when it does."""
  ts = CASES[case]()
  params = ts.init_params(jax.random.key(5))
  batch = next(ts.train.eval_batches(8))
  short, leak = measure._jitted(ts, params, batch, "fast", task_heads=True)
  full, no_leak = measure._jitted(ts, params, batch, "fast", task_heads=False)
  assert float(no_leak) == 0.0
  if case == "losses_coupled_across_tasks":
    assert float(leak) > 0     # landscape_dissimilarity falls back (reference test above)
  else:
    assert float(leak) == 0.0
    np.testing.assert_allclose(short, full, rtol=1e-5, atol=1e-7 * float(np.abs(full).max()))


def test_averages_initialisations_and_scales_with_the_step():
  ts = tiny_synthetic(2, 2)
  one = [measure.landscape_dissimilarity(ts, num_samples=16, init_seeds=(s,), batch_size=8)
         for s in (0, 1)]
  both = measure.landscape_dissimilarity(ts, num_samples=16, init_seeds=(0, 1), batch_size=8)
  np.testing.assert_allclose(both, (one[0] + one[1]) / 2, rtol=1e-6)
  half = measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8, step_size=0.5)
  np.testing.assert_allclose(half, one[0] / 2, rtol=1e-6)


def test_padding_and_sample_count():
  """num_samples not a multiple of batch_size: padded samples must not count."""
  ts = tiny_synthetic(2, 2)
  params = ts.init_params(jax.random.key(0))
  got = measure.landscape_dissimilarity(ts, num_samples=13, params=params, batch_size=8)
  want = reference(ts, params, ts.train.inputs[:13], ts.train.labels[:13])
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_same_heads_copies_head_zero_and_is_the_default():
  ts = tiny_synthetic(2, 2)
  p = ts.init_params(jax.random.key(0))
  same = measure.same_heads(p)
  for leaf in jax.tree.leaves(same["heads"]):
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
  jax.tree.map(np.testing.assert_array_equal, same["trunk"], p["trunk"])
  default = measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8)
  explicit = measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8,
                                             params=measure.same_heads(p))
  np.testing.assert_allclose(default, explicit, rtol=1e-6)
  independent = measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8,
                                                head_init="independent")
  assert not np.allclose(default, independent)


def test_one_shot_and_optimised_compiles_agree(monkeypatch):
  """A few passes compile cheaply (tgroup.one_shot), many fully; same numbers either way."""
  ts = tiny_synthetic(2, 2)
  got = {}
  for limit in (0, 100):
    monkeypatch.setattr(measure, "ONE_SHOT_PASSES", limit)
    got[limit] = measure.landscape_dissimilarity(ts, num_samples=24, batch_size=8)
  np.testing.assert_allclose(got[0], got[100], rtol=1e-5)
  params = measure.same_heads(ts.init_params(jax.random.key(0)))
  once = measure.same_heads(ts.init_params(jax.random.key(0), once=True))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), params, once)


def test_the_default_theta0_takes_the_shared_head_path(monkeypatch):
  """Copied heads (the default) trace the one-backward-per-output path; independent
  heads the per-task one."""
  calls = []
  real = measure._shared_head_deltas
  monkeypatch.setattr(measure, "_shared_head_deltas", lambda *a: calls.append(1) or real(*a))
  ts = tiny_synthetic(2, 2)   # a new TaskSet: nothing compiled for it yet
  measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8)
  assert calls
  calls.clear()
  measure.landscape_dissimilarity(ts, num_samples=16, batch_size=8, head_init="independent")
  assert not calls


@seed(0)
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 4), c=st.integers(1, 3), widths=st.lists(st.integers(2, 6), min_size=1,
       max_size=2), n=st.integers(2, 9), coupled_losses=st.booleans(), key=st.integers(0, 2**16))
def test_shared_head_path_equals_the_per_task_path(m, c, widths, n, coupled_losses, key):
  """Any number of tasks, head outputs and trunk layers: the two fast paths agree."""
  rng = np.random.default_rng(key)
  ds = data_lib.ArrayDataset(rng.standard_normal((n, 3)).astype(np.float32),
                             rng.standard_normal((n, m)).astype(np.float32))
  losses = coupled(weighted_vector_error) if coupled_losses else weighted_vector_error
  ts = tasks_lib.TaskSet(
      name="random", tasks=tuple(f"t{i}" for i in range(m)),
      model=models.MultiTaskModel(models.MLPTrunk(tuple(widths)), models.DenseHead(c), m),
      sample_losses=losses, sample_metrics=tasks_lib.absolute_error, train=ds, test=ds,
      optimizer=optax.sgd(0.1), batch_size=n)
  params = measure.same_heads(ts.init_params(jax.random.key(key)))
  batch = next(ts.train.eval_batches(n))
  for task_heads in (True, False):
    shared, shared_leak = measure._jitted(ts, params, batch, "fast", task_heads=task_heads,
                                          shared_head=True)
    per_task, leak = measure._jitted(ts, params, batch, "fast", task_heads=task_heads)
    scale = float(np.abs(per_task).max()) + 1e-30
    np.testing.assert_allclose(shared, per_task, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(shared_leak, leak, rtol=1e-5, atol=1e-6 * (float(leak) + 1e-30))
