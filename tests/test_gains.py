"""Gain collection against a slow, obviously correct reference.

The reference takes every lookahead separately in a Python loop: per-task
gradients from one ``jax.grad`` per task, explicit copies of the parameters and
optimizer state, the optimizer applied to each combination, and each gain
formula of docs/design.md §2 written out entry by entry.
"""
import copy
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from tgroup import train
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, Gains, collect_gains, run_collection
from tgroup.gains import lookahead

OPTIMIZERS = {
    "sgd_momentum": lambda: optax.sgd(0.05, momentum=0.9),
    "adam": lambda: optax.adam(0.01),
}
ALL_MEASURES = ("principled", "principled_marginal", "tag", "cosine", "first_order")


def reference_collection(taskset, config):
  """The collection run, one combination at a time (NumPy float64 accumulators)."""
  m = taskset.num_tasks
  s = config.sample_tasks or m
  opt = taskset.optimizer
  init_key, key = jax.random.split(jax.random.key(config.seed))
  params = taskset.init_params(init_key)
  opt_state = opt.init(params)
  draws = jnp.zeros(m, jnp.int32)
  sums = {k: np.zeros((m, m)) for k in config.measures}
  counts = {k: np.zeros((m, m), int) for k in config.measures}
  batches = taskset.train.train_batches(taskset.batch_size, seed=config.seed)
  losses_of = lambda p, b: np.asarray(taskset.task_losses(p, b), np.float64)
  if taskset.lookahead_losses is not None:  # lookaheads scored on a fixed scorer
    losses_of = lambda p, b: np.asarray(taskset.lookahead_losses(p), np.float64)
  is_shared = taskset.shared_mask(params)

  def step_with(grad, shared_only):
    p, o = copy.deepcopy(params), copy.deepcopy(opt_state)
    updates, _ = opt.update(grad, o, p)
    if shared_only:
      updates = jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, is_shared)
    return optax.apply_updates(p, updates)

  for step in range(config.steps):
    batch = next(batches)
    if step % config.collect_every == 0:
      key, draw_key = jax.random.split(key)
      idx = [int(i) for i in lookahead.draw_tasks(draw_key, draws, s, config.sample_bias)]
      draws = draws.at[jnp.array(idx)].add(1)
      base = losses_of(params, batch)
      grads = {t: jax.grad(lambda p, t=t: taskset.task_losses(p, batch)[t])(params) for t in idx}
      add = lambda *gs: jax.tree.map(lambda *xs: sum(xs), *gs)
      after = lambda *ts, shared_only=False: losses_of(
          step_with(add(*[grads[t] for t in ts]), shared_only), batch)
      flat = {t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(grads[t])]) for t in idx}
      trunk = {t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(grads[t]["trunk"])])
               for t in idx}
      for i in idx:
        for j in idx:
          if "cosine" in config.measures:
            sums["cosine"][i, j] += trunk[i] @ trunk[j] / (
                np.linalg.norm(trunk[i]) * np.linalg.norm(trunk[j]))
            counts["cosine"][i, j] += 1
          if "first_order" in config.measures:   # L_j(θ − (g_i + g_j)) to first order
            sums["first_order"][i, j] += flat[j] @ (flat[i] + flat[j]) / base[j]
            counts["first_order"][i, j] += 1
          if "principled" in config.measures:
            s_ij = 1 - after(i, j)[j] / base[j]          # i == j: the self-pair {j, j}
            sums["principled"][i, j] += s_ij
            counts["principled"][i, j] += 1
          if "principled_marginal" in config.measures and i != j:
            sums["principled_marginal"][i, j] += (after(j)[j] - after(i, j)[j]) / base[j]
            counts["principled_marginal"][i, j] += 1
          if "tag" in config.measures:
            sums["tag"][i, j] += 1 - after(i, shared_only=True)[j] / base[j]
            counts["tag"][i, j] += 1
    grad = jax.grad(lambda p: jnp.sum(taskset.task_losses(p, batch)))(params)
    updates, opt_state = opt.update(grad, opt_state, params)
    params = optax.apply_updates(params, updates)
  return {k: (np.where(counts[k] > 0, sums[k] / np.maximum(counts[k], 1), 0.0), counts[k])
          for k in config.measures}, params


CASES = [
    # optimizer, collect_every, sample_tasks, sample_bias, strategy
    ("sgd_momentum", 1, None, "uniform", "map"),
    ("adam", 1, None, "uniform", "map"),
    ("sgd_momentum", 2, None, "uniform", "vmap"),
    ("adam", 3, 3, "uniform", "map"),
    ("sgd_momentum", 1, 3, "rare", "vmap"),
]


@pytest.mark.parametrize("opt_name,every,sample,bias,strategy", CASES)
def test_collection_matches_reference(opt_name, every, sample, bias, strategy):
  with jax.enable_x64(True):
    ts = dataclasses.replace(tiny_synthetic(2, 2, dtype=np.float64, batch_size=16),
                             optimizer=OPTIMIZERS[opt_name]())
    config = CollectConfig(measures=ALL_MEASURES, steps=5, collect_every=every,
                           sample_tasks=sample, sample_bias=bias, strategy=strategy, quiet=True)
    gains, state, _ = run_collection(ts, config)
    expected, ref_params = reference_collection(ts, config)
  for name in ALL_MEASURES:
    want, want_counts = expected[name]
    np.testing.assert_array_equal(gains[name].counts, want_counts, err_msg=name)
    np.testing.assert_allclose(gains[name].gains, want, rtol=1e-5, atol=1e-12, err_msg=name)
    assert np.abs(want).max() > 1e-4, "gains too small to make the comparison meaningful"
  chex.assert_trees_all_close(state.params, ref_params, rtol=1e-10)


@pytest.mark.parametrize("opt_name,sample", [("adam", 3)])
def test_lookaheads_scored_on_the_tasksets_scorer_match_reference(opt_name, sample):
  """``TaskSet.lookahead_losses``: steps follow the batch's gradients, gains the scorer."""
  measures = ("principled", "principled_marginal", "tag", "cosine")
  with jax.enable_x64(True):
    ts = dataclasses.replace(tiny_synthetic(2, 2, dtype=np.float64, batch_size=16),
                             optimizer=OPTIMIZERS[opt_name]())
    held_out = next(ts.val.eval_batches(8))
    scorer = lambda p: ts.task_losses(p, held_out)
    scored = dataclasses.replace(ts, lookahead_losses=scorer)
    config = CollectConfig(measures=measures, steps=4, sample_tasks=sample, quiet=True)
    gains, _, _ = run_collection(scored, config)
    expected, _ = reference_collection(scored, config)
    plain, _, _ = run_collection(ts, config)
  for name in measures:
    np.testing.assert_allclose(gains[name].gains, expected[name][0], rtol=1e-5, atol=1e-12,
                               err_msg=name)
  # The scorer is what the gains read: on another batch they differ (cosine reads no score).
  for name in ("principled", "principled_marginal", "tag"):
    assert np.abs(gains[name].gains - plain[name].gains).max() > 1e-4, name
  np.testing.assert_allclose(gains["cosine"].gains, plain["cosine"].gains, rtol=1e-10)


def test_a_scorer_refuses_what_expands_the_training_loss(tiny):
  scored = dataclasses.replace(tiny, lookahead_losses=lambda p: jnp.ones(tiny.num_tasks))
  with pytest.raises(UserError, match="first_order measure .* lookahead_losses"):
    collect_gains(scored, CollectConfig(measures=("first_order",), steps=1, quiet=True))
  with pytest.raises(UserError, match="lookahead=shared needs"):
    collect_gains(scored, CollectConfig(measures=("principled",), steps=1, lookahead="shared",
                                        quiet=True))


def test_float32_collection_matches_reference():
  """The default precision: gains are differences of loss ratios, accurate to ~1e-6."""
  config = CollectConfig(measures=ALL_MEASURES, steps=4, quiet=True)
  ts = tiny_synthetic(2, 2, batch_size=16)
  gains = collect_gains(ts, config)
  expected, _ = reference_collection(ts, config)
  for name in ALL_MEASURES:
    np.testing.assert_allclose(gains[name].gains, expected[name][0], atol=1e-5, err_msg=name)


def test_collection_never_changes_the_training_state(tiny):
  """The all-tasks network after a collecting run is bitwise the one without."""
  config = CollectConfig(measures=ALL_MEASURES, steps=6, collect_every=2, quiet=True)
  state = run_collection(tiny, config).state
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  plain = train.init_state(tiny, init_key)
  update_fn = jax.jit(train.make_update_fn(tiny), donate_argnums=0)
  batches = tiny.train.train_batches(tiny.batch_size, seed=config.seed)
  for _ in range(6):
    plain, _ = update_fn(plain, next(batches), jnp.ones(tiny.num_tasks))
  chex.assert_trees_all_equal(state, plain)


@pytest.mark.parametrize("strategy,chunk", [("map", None), ("map", 2), ("vmap", None),
                                            ("vmap", 2)])
def test_per_task_gradients_in_chunks_are_the_jacobian_rows(tiny, strategy, chunk):
  params = tiny.init_params(jax.random.key(0))
  batch = next(tiny.train.train_batches(tiny.batch_size, seed=0))
  losses_fn = lambda p: tiny.task_losses(p, batch)
  idx = jnp.array([0, 2, 3])
  losses, jac = lookahead.per_task_gradients(losses_fn, params, idx, tiny.num_tasks,
                                             strategy=strategy, chunk=chunk)
  rows = jax.tree.map(lambda j: j[idx], jax.jacrev(losses_fn)(params))
  chex.assert_trees_all_close(jac, rows, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(losses, losses_fn(params), rtol=1e-6)


@pytest.mark.parametrize("strategy", ["map", "vmap"])
def test_collect_step_traces_once(tiny, strategy):
  """No recompilation across steps, batches, draws and accumulated states."""
  chex.clear_trace_counter()  # counters are keyed by code location, shared across params
  step = lookahead.make_collect_step(tiny, ALL_MEASURES, sample_tasks=4, sample_bias="rare",
                                     strategy=strategy)
  step = jax.jit(chex.assert_max_traces(step, n=1))
  state = train.init_state(tiny, jax.random.key(0))
  cstate = lookahead.init_collector(jax.random.key(1), tiny.num_tasks, ALL_MEASURES)
  update_fn = jax.jit(train.make_update_fn(tiny))
  batches = tiny.train.train_batches(tiny.batch_size, seed=0)
  for _ in range(4):
    batch = next(batches)
    cstate = step(cstate, state.params, state.opt_state, batch)
    state, _ = update_fn(state, batch, jnp.ones(tiny.num_tasks))
  assert int(cstate.draws.sum()) == 16


def test_uniform_draws_are_uniform():
  draws = jnp.zeros(6, jnp.int32)
  keys = jax.random.split(jax.random.key(0), 3000)
  idx = jax.vmap(lambda k: lookahead.draw_tasks(k, draws, 2, "uniform"))(keys)
  freq = np.bincount(np.asarray(idx).ravel(), minlength=6) / 6000
  np.testing.assert_allclose(freq, 1 / 6, atol=0.02)
  assert (np.diff(np.asarray(idx), axis=1) > 0).all(), "indices sorted and distinct"


def test_rare_bias_balances_draws():
  def spread(bias):
    draws, key = jnp.zeros(7, jnp.int32), jax.random.key(0)
    for _ in range(200):
      key, sub = jax.random.split(key)
      draws = draws.at[lookahead.draw_tasks(sub, draws, 2, bias)].add(1)
    return int(draws.max() - draws.min())
  assert spread("rare") < spread("uniform")
  assert spread("rare") <= 6


@pytest.mark.parametrize("bad,match", [
    (dict(measures=("nope",)), "unknown measure"),
    (dict(collect_every=0), "collect_every"),
    (dict(sample_tasks=1), "sample_tasks"),
    (dict(sample_tasks=99), "sample_tasks"),
    (dict(sample_bias="often"), "sample_bias"),
    (dict(strategy="pmap"), "strategy"),
    (dict(steps=0), "steps"),
])
def test_bad_settings_are_user_errors(tiny, bad, match):
  with pytest.raises(UserError, match=match):
    collect_gains(tiny, CollectConfig(**bad))


def test_gains_file_roundtrip_and_validation(tmp_path):
  g = Gains(("a", "b"), "principled", np.array([[0.5, 0.1], [-0.2, 0.4]]),
            np.array([[3, 3], [3, 3]]), {"steps": 3})
  path = str(tmp_path / "gains.json")
  g.save(path)
  back = Gains.load(path)
  assert back.tasks == g.tasks and back.settings == {"steps": 3}
  np.testing.assert_array_equal(back.gains, g.gains)
  bad = g.to_json()
  bad["gains"][1][0] = float("nan")
  with pytest.raises(UserError, match=r"gains\[1\]\[0\] \(b -> a\) is not finite"):
    Gains.from_json(bad)
  with pytest.raises(UserError, match="2x2"):
    Gains.from_json({**g.to_json(), "gains": [[1.0, 2.0]]})
  (tmp_path / "broken.json").write_text('{"tasks": ["a",\n  oops}')
  with pytest.raises(UserError, match="broken.json:2"):
    Gains.load(str(tmp_path / "broken.json"))
