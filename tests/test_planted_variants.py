"""Planted problems of varied structure: tgroup.benchmarks.synthetic.planted and its data.

The default tests are fast (small splits, a few training steps). The slow test trains every
subset of two planted problems and checks that the planted partition ranks near the top on
validation: ``pytest -m slow tests/test_planted_variants.py -s`` (prints the ranks).
"""
import hashlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tgroup import models
from tgroup import train
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.methods import oracle

SMALL = dict(num_train=128, num_val=64, num_test=64, batch_size=32)


def _digest(x, y):
  h = hashlib.sha256()
  h.update(x.tobytes())
  h.update(y.tobytes())
  return h.hexdigest()


# Recorded from make_data as it was before make_planted_data existed (commit d7bcf17), so the
# synthetic benchmark's data, and every result saved from it, cannot move unnoticed.
@pytest.mark.parametrize("args,kwargs,digest", [
    ((3, 3), dict(rho=0.5, num_samples=64, input_dim=16, features_per_cluster=24, noise=0.3,
                  seed=0), "17b5dc0d56d6eb416abe89106a9d2391d2e615b1c1a2a0814900678c0e517367"),
    ((2, 4), dict(rho=1.0, num_samples=50, input_dim=8, features_per_cluster=12, noise=0.0,
                  seed=7), "836b1b876f889fcb3ae758a71cd7971f40b363708eacde80fd392bbf95472762"),
    ((1, 1), dict(rho=0.0, num_samples=10, input_dim=3, features_per_cluster=5, noise=1.5,
                  seed=3), "81b6b03d52b2f2c62aff2d698812036e943e3f351ac243e5314fc55d6c1dae56"),
])
def test_make_data_is_pinned(args, kwargs, digest):
  x, y = synthetic.make_data(*args, **kwargs)
  assert (x.dtype, y.dtype) == (np.float32, np.float32)
  assert y.shape == (kwargs["num_samples"], args[0] * args[1])
  assert _digest(x, y) == digest


def test_equal_families_and_scalar_noise_as_a_list_give_make_data():
  kw = dict(rho=0.5, num_samples=32, input_dim=6, features_per_cluster=8, seed=2)
  x, y = synthetic.make_data(2, 3, noise=0.4, **kw)
  for noise in (0.4, [0.4] * 6, np.full(6, 0.4)):
    xp, yp = synthetic.make_planted_data((3, 3), noise=noise, **kw)
    assert np.array_equal(x, xp) and np.array_equal(y, yp)


def test_unequal_families_shapes_and_ground_truth():
  ts = synthetic.planted((1, 3, 2), **SMALL)
  assert ts.tasks == ("c0_t0", "c1_t0", "c1_t1", "c1_t2", "c2_t0", "c2_t1")
  assert ts.ground_truth_groups == (("c0_t0",), ("c1_t0", "c1_t1", "c1_t2"), ("c2_t0", "c2_t1"))
  assert ts.train.inputs.shape == (128, 16) and ts.train.labels.shape == (128, 6)
  assert ts.val.labels.shape == (64, 6) and ts.test.labels.shape == (64, 6)
  assert ts.name == "planted" and ts.metric_name == "mae" and not ts.metric_is_error
  assert ts.train.labels.dtype == np.float32
  # The splits are consecutive slices of one draw: the ground truth is shared.
  x, y = synthetic.make_planted_data((1, 3, 2), rho=0.5, num_samples=256, input_dim=16,
                                     features_per_cluster=24, noise=0.3, seed=0)
  assert np.array_equal(ts.val.labels, y[128:192]) and np.array_equal(ts.test.inputs, x[192:])
  for word in ("[1, 3, 2]", "rho=0.5", "regression", "relu", "sgd lr=0.02", "noise=0.3",
               "seed=0"):
    assert word in ts.description


def test_families_read_out_their_own_features():
  """Noiseless tasks of one family correlate far more than tasks of different families."""
  _, y = synthetic.make_planted_data((3, 3), rho=0.5, num_samples=4000, input_dim=16,
                                     features_per_cluster=24, noise=0.0, seed=0)
  corr = np.abs(np.corrcoef(y.T))
  within = [corr[i, j] for i in range(6) for j in range(i) if i // 3 == j // 3]
  across = [corr[i, j] for i in range(6) for j in range(i) if i // 3 != j // 3]
  assert min(within) > max(across) + 0.3


def test_per_task_noise_scales_each_column():
  kw = dict(rho=0.5, num_samples=4000, input_dim=16, features_per_cluster=24, seed=0)
  _, clean = synthetic.make_planted_data((2, 2), noise=0.0, **kw)
  scales = np.array([0.0, 0.3, 0.6, 1.2])
  _, noisy = synthetic.make_planted_data((2, 2), noise=scales, **kw)
  # The noise is drawn last, so the signal is the noiseless draw's.
  residual_var = (noisy - clean).var(axis=0)
  assert residual_var[0] == 0.0
  assert np.all(np.diff(residual_var) > 0)
  np.testing.assert_allclose(residual_var[1:], scales[1:] ** 2, rtol=0.1)


def test_classification_labels_are_balanced_binary_ints():
  ts = synthetic.planted((2, 3), task="classification", **SMALL)
  labels = np.concatenate([ts.train.labels, ts.val.labels, ts.test.labels])
  assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1}
  assert np.all(np.abs(labels.mean(axis=0) - 0.5) < 0.15), labels.mean(axis=0)
  # The label is the sign of the regression target drawn with the same settings.
  reg = synthetic.planted((2, 3), task="regression", **SMALL)
  assert np.array_equal(ts.train.labels, (reg.train.labels > 0).astype(np.int32))
  assert (ts.metric_name, ts.metric_is_error) == ("error", True)


def test_tanh_trunk_applies_tanh_to_the_same_parameters():
  x = jax.random.normal(jax.random.key(1), (5, 7))
  relu, tanh = models.MLPTrunk((4, 3)), models.MLPTrunk((4, 3), activation="tanh")
  params = relu.init(jax.random.key(0), x)["params"]
  assert jax.tree.structure(params) == jax.tree.structure(
      tanh.init(jax.random.key(0), x)["params"])
  h = x
  for layer in ("Dense_0", "Dense_1"):
    h = jnp.tanh(h @ params[layer]["kernel"] + params[layer]["bias"])
  out = tanh.apply({"params": params}, x)
  np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
  assert not np.allclose(out, relu.apply({"params": params}, x))


def test_default_trunk_is_unchanged():
  trunk = models.MLPTrunk((4,))
  assert trunk.activation == "relu"
  x = jnp.linspace(-2.0, 2.0, 12).reshape(4, 3)
  params = trunk.init(jax.random.key(0), x)["params"]
  assert sorted(params) == ["Dense_0"]
  expected = jnp.maximum(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"], 0.0)
  np.testing.assert_allclose(trunk.apply({"params": params}, x), expected, rtol=1e-6)


def test_unknown_trunk_activation_is_a_user_error():
  with pytest.raises(UserError, match="unknown trunk activation 'gelu'"):
    models.MLPTrunk((4,), activation="gelu").init(jax.random.key(0), jnp.ones((2, 3)))


@pytest.mark.parametrize("optimizer,learning_rate,step", [
    ("sgd", None, 0.02), ("adam", None, 0.003), ("sgd", 0.1, 0.1), ("adam", 0.01, 0.01)])
def test_optimizer_and_its_default_learning_rate(optimizer, learning_rate, step):
  ts = synthetic.planted((1, 1), optimizer=optimizer, learning_rate=learning_rate, **SMALL)
  grads = {"w": jnp.full((3,), 2.0)}
  # A first step from zero momentum moves by -lr * g (SGD) or about -lr * sign(g) (Adam).
  updates, _ = ts.optimizer.update(grads, ts.optimizer.init(grads), grads)
  expected = -step * (2.0 if optimizer == "sgd" else 1.0)
  np.testing.assert_allclose(updates["w"], expected, rtol=1e-4)
  assert f"{optimizer} lr={step:g}" in ts.description


@pytest.mark.parametrize("kwargs", [
    dict(family_sizes=(2, 1), task="regression", trunk_activation="relu", optimizer="sgd"),
    dict(family_sizes=(1, 2, 1), task="classification", trunk_activation="tanh",
         optimizer="adam", noise=[0.1, 0.2, 0.3, 0.4]),
])
def test_small_planted_tasksets_check_and_train(kwargs):
  ts = synthetic.planted(**kwargs, **SMALL)
  ts.check()
  m = ts.num_tasks
  run = lambda steps: train.train_networks(ts, np.ones((1, m)), jax.random.key(0)[None],
                                           steps=steps, data_seed=0, quiet=True).params
  # Both parameter sets in one evaluation (one compile): the initial ones, then the trained.
  both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), run(0), run(40))
  before, after = train.evaluate(ts, both, ts.train, stacked=True)[0]
  assert before.shape == after.shape == (m,)
  assert np.isfinite(after).all()
  assert after.sum() < before.sum()


@pytest.mark.parametrize("kwargs,message", [
    (dict(family_sizes=(3,)), "at least 2 families"),
    (dict(family_sizes=()), "at least 2 families"),
    (dict(family_sizes=(2, 0)), "size >= 1"),
    (dict(family_sizes=(2, 1.5)), "size >= 1"),
    (dict(family_sizes=3), "sequence of task counts"),
    (dict(task="ranking"), "unknown task 'ranking'"),
    (dict(trunk_activation="gelu"), "unknown trunk_activation 'gelu'"),
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'"),
    (dict(noise=[0.1] * 5), "noise has 5 values for 6 tasks"),
    (dict(noise=[[0.1] * 6]), "flat sequence"),
    (dict(noise="loud"), "noise must be a float"),
    (dict(noise=-0.1), "noise must be finite and >= 0"),
    (dict(noise=[0.1] * 5 + [-0.1]), "noise must be finite and >= 0"),
    (dict(noise=float("nan")), "noise must be finite and >= 0"),
    (dict(rho=-0.5), "rho must be >= 0"),
    (dict(learning_rate=0.0), "learning_rate must be > 0"),
    (dict(batch_size=512), "at least the batch size"),
])
def test_bad_settings_are_one_line_user_errors(kwargs, message):
  with pytest.raises(UserError, match=message) as info:
    synthetic.planted(**{**SMALL, **kwargs})
  assert "\n" not in str(info.value)


def test_make_planted_data_checks_its_arguments():
  kw = dict(rho=0.5, num_samples=8, input_dim=3, features_per_cluster=4, seed=0)
  with pytest.raises(UserError, match="noise has 2 values for 3 tasks"):
    synthetic.make_planted_data((2, 1), noise=[0.1, 0.2], **kw)
  with pytest.raises(UserError, match="at least 1 families"):
    synthetic.make_planted_data((), noise=0.1, **kw)
  _, y = synthetic.make_planted_data((4,), noise=0.1, **kw)  # one family is data, not a problem
  assert y.shape == (8, 4)


def test_planted_records_its_definition():
  ts = synthetic.planted((2, 1), task="classification", noise=[0.1, 0.2, 0.3], **SMALL)
  definition = ts.definition
  assert definition["factory"] == "tgroup.benchmarks.synthetic.planted"
  args = definition["arguments"]
  assert args["family_sizes"] == [2, 1] and args["task"] == "classification"
  assert args["noise"] == [0.1, 0.2, 0.3] and args["trunk_activation"] == "relu"
  assert args["learning_rate"] is None and args["train_steps"] == 1000
  assert synthetic.planted.definition((2, 1), task="classification", noise=[0.1, 0.2, 0.3],
                                      **SMALL) == definition
  assert synthetic.planted.definition((2, 1), task="classification", noise=[0.1, 0.2, 0.4],
                                      **SMALL) != definition


# Measured (seed 0, CPU): at the default 1,024 training samples the classification problem is
# an overfitting regime, not a capacity one: single-task networks reach validation
# cross-entropy 0.89-1.54 per task against 0.34-0.55 in the all-task network, so more sharing
# always looks better and the planted partition ranks 57th of 90 on validation. With 4,096
# training samples it ranks 2nd (1st on test); seeds 1 and 2 gave 1st and 17th on validation.
CLASSIFICATION = dict(family_sizes=(2, 2, 2), trunk_activation="tanh", task="classification",
                      optimizer="adam")


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [
    dict(family_sizes=(3, 3), trunk_activation="relu", task="regression", optimizer="sgd"),
    pytest.param(CLASSIFICATION, marks=pytest.mark.xfail(
        strict=True, reason="overfitting regime at num_train=1024: planted ranks 57 of 90")),
    dict(CLASSIFICATION, num_train=4096),
])
def test_planted_partition_ranks_high_on_validation(kwargs):
  start = time.perf_counter()
  ts = synthetic.planted(**kwargs, seed=0)
  m, k = ts.num_tasks, len(ts.ground_truth_groups)
  table = oracle.subset_table(ts, seeds=(0,), quiet=True)
  planted = sorted(tuple(ts.tasks.index(t) for t in g) for g in ts.ground_truth_groups)
  by_val = oracle.ranked_partitions(table, m, num_groups=k, key="val_loss")
  by_test = oracle.ranked_partitions(table, m, num_groups=k)
  rank = [p for _, p in by_val].index(planted) + 1
  test_rank = [p for _, p in by_test].index(planted) + 1
  planted_val = by_val[rank - 1][0]
  best_other = next(total for total, p in by_val if p != planted)
  print(f"\n{ts.description}: planted ranks {rank} of {len(by_val)} {k}-group partitions on "
        f"validation (total {planted_val:.4f}; best other {best_other:.4f} "
        f"{by_val[0][1] if rank > 1 else by_val[1][1]}), {test_rank} on test; "
        f"{time.perf_counter() - start:.0f} s")
  assert rank <= 3
