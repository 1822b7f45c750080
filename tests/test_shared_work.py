"""The shared lookahead path equals the general one; detection; bounded chunks.

The general path (an optimizer call and a full forward pass per combination) is
itself checked against a Python-loop reference in test_gains.py; here the shared
path (tgroup.gains.shared_work) must give the same gains to 1e-5 relative, in
float64, on an MLP (first layer by the Gram path) and a small CNN (first conv by
the generic products), for every optimizer family that qualifies, with TAG's
masked step, sampled tasks and both strategies.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from tgroup import data as data_lib
from tgroup import models
from tgroup import one_shot
from tgroup import tasks as tasks_lib
from tgroup import train
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, lookahead, run_collection, shared_work

ALL_MEASURES = ("principled", "principled_marginal", "tag", "cosine", "first_order")


def scaled_sgd(learning_rate: float, seed: int = 0) -> optax.GradientTransformation:
  """Affine, but with a different rate per parameter: v is not uniform over a leaf."""
  def init(params):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return treedef.unflatten([jax.random.uniform(k, x.shape, x.dtype, 0.5, 1.5)
                              for k, x in zip(keys, leaves)])

  def update(grads, scales, params=None):
    del params
    return jax.tree.map(lambda g, c: -learning_rate * c * g, grads, scales), scales

  return optax.GradientTransformation(init, update)


OPTIMIZERS = {
    "sgd": lambda: optax.sgd(0.05),
    "momentum": lambda: optax.sgd(0.05, momentum=0.9),
    "nesterov": lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    "decay_schedule": lambda: optax.chain(
        optax.add_decayed_weights(1e-2),
        optax.sgd(optax.exponential_decay(0.05, transition_steps=2, decay_rate=0.5),
                  momentum=0.5)),
    "per_parameter_rates": lambda: scaled_sgd(0.05),
}


class ConvTrunk(nn.Module):
  """Two 3×3 convolutions with GroupNorm: the first one's input is the batch."""
  param_dtype: object = jnp.float64

  @nn.compact
  def __call__(self, x):
    for _ in range(2):
      x = nn.Conv(4, (3, 3), param_dtype=self.param_dtype)(x)
      x = nn.relu(nn.GroupNorm(num_groups=2, param_dtype=self.param_dtype)(x))
    return x.reshape(x.shape[0], -1)


def mlp(optimizer, **kw):
  """A float64 synthetic MLP whose first layer (input 24, 4 tasks) shares under auto."""
  ts = tiny_synthetic(2, 2, dtype=np.float64, batch_size=16, input_dim=24, **kw)
  return dataclasses.replace(ts, optimizer=optimizer)


def cnn(optimizer):
  """4 tasks on 5×5×3 images, float64."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((96, 5, 5, 3))
  y = np.tanh(x.reshape(96, -1) @ rng.standard_normal((75, 4)) / 8)
  split = lambda a, b: data_lib.ArrayDataset(x[a:b], y[a:b])
  model = models.MultiTaskModel(ConvTrunk(), models.DenseHead(1, param_dtype=jnp.float64), 4)
  return tasks_lib.TaskSet(name="cnn", tasks=("a", "b", "c", "d"), model=model,
                           sample_losses=tasks_lib.squared_error,
                           sample_metrics=tasks_lib.absolute_error, train=split(0, 64),
                           test=split(64, 96), optimizer=optimizer, batch_size=16)


def trained_state(ts, steps=3):
  """A state some steps into training (momentum traces and schedules not at zero)."""
  state = train.init_state(ts, jax.random.key(0))
  update_fn = jax.jit(train.make_update_fn(ts), compiler_options=one_shot.CPU_OPTIONS)
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  for _ in range(steps):
    state, _ = update_fn(state, next(batches), jnp.ones(ts.num_tasks))
  return state, next(batches)


# The lookahead rows (pairs, self-pairs, TAG's singles); cosine and first_order need none.
MEASURES = ("principled", "tag")


def step_sums(ts, state, batch, measures=MEASURES, **kw):
  """One jitted collection step from an empty collector: each measure's (m, m) sums.

  Compiled with XLA's cheapest CPU settings (tgroup.one_shot): the arithmetic is
  the same, the test's compile time a third.
  """
  step = jax.jit(lookahead.make_collect_step(ts, measures, **kw),
                 compiler_options=one_shot.CPU_OPTIONS)
  cstate = lookahead.init_collector(jax.random.key(1), ts.num_tasks, measures)
  out = step(cstate, state.params, state.opt_state, batch)
  return {name: np.asarray(acc.sums) for name, acc in out.measures.items()}


def relative(a, b) -> float:
  return float(np.abs(a - b).max() / np.abs(b).max())


def assert_same_gains(got, want, rtol=1e-5):
  for name in want:
    assert np.abs(want[name]).max() > 1e-6, f"{name}: gains too small to compare"
    assert relative(got[name], want[name]) <= rtol, (name, relative(got[name], want[name]))


def shared_choices(ts, state, batch, s, mode="auto"):
  plan = shared_work.plan(ts, "shared")
  return shared_work.choose_layers(shared_work.find_layers(ts.task_losses, state.params, batch),
                                   s, plan.uniform, mode)


# Fast by default: one optimizer per kind of v (uniform with a state and a schedule,
# per parameter); plain SGD and heavy-ball momentum (special cases) are slow tests.
SLOW = pytest.mark.slow


@pytest.mark.parametrize("name", [pytest.param("sgd", marks=SLOW),
                                  pytest.param("momentum", marks=SLOW),
                                  "nesterov", "decay_schedule", "per_parameter_rates"])
def test_mlp_shared_equals_general(name):
  with jax.enable_x64(True):
    ts = mlp(OPTIMIZERS[name]())
    state, batch = trained_state(ts)
    (choice,) = shared_choices(ts, state, batch, 3)
    # The first layer shares its work: by the Gram path where v is one rate per leaf.
    assert choice.layer.name == "trunk/Dense_0" and choice.gram == (name != "per_parameter_rates")
    general = step_sums(ts, state, batch, lookahead="general", sample_tasks=3)
    shared = step_sums(ts, state, batch, lookahead="shared", sample_tasks=3)
  assert_same_gains(shared, general)


@pytest.mark.parametrize("name", [pytest.param("momentum", marks=SLOW), "decay_schedule"])
def test_cnn_shared_equals_general(name):
  with jax.enable_x64(True):
    ts = cnn(OPTIMIZERS[name]())
    state, batch = trained_state(ts)
    (choice,) = shared_choices(ts, state, batch, 4)
    assert choice.layer.name == "trunk/Conv_0" and not choice.gram  # generic products
    general = step_sums(ts, state, batch, lookahead="general", strategy="vmap")
    shared = step_sums(ts, state, batch, lookahead="shared", strategy="vmap")
  assert_same_gains(shared, general)


def test_whole_collections_agree_and_record_their_path():
  with jax.enable_x64(True):
    ts = mlp(OPTIMIZERS["nesterov"]())
    config = CollectConfig(measures=ALL_MEASURES, steps=4, sample_tasks=3, sample_bias="rare",
                           quiet=True)
    shared = run_collection(ts, config).gains
    general = run_collection(ts, dataclasses.replace(config, lookahead="general")).gains
  assert_same_gains({k: g.gains for k, g in shared.items()},
                    {k: g.gains for k, g in general.items()})
  assert shared["tag"].settings["lookahead"] == "shared"
  assert "lookahead_reason" not in shared["tag"].settings
  assert general["tag"].settings["lookahead"] == "general"
  assert "lookahead" not in config.settings(ts)  # auto: the identity of earlier versions


def test_nonaffine_optimizers_take_the_general_path():
  ts = dataclasses.replace(tiny_synthetic(2, 2, batch_size=16), optimizer=optax.adam(1e-2))
  gains = run_collection(ts, CollectConfig(measures=("principled",), steps=1, quiet=True)).gains
  assert gains["principled"].settings["lookahead"] == "general"
  assert gains["principled"].settings["lookahead_reason"] == (
      "optimizer update is not affine in the gradient")
  clipped = dataclasses.replace(ts, optimizer=optax.chain(optax.clip_by_global_norm(1.0),
                                                          optax.sgd(0.1, momentum=0.9)))
  # The plan a run's step follows, and records (nothing compiled).
  assert lookahead.make_collect_step(clipped, ("principled",)).plan.settings() == {
      "lookahead": "general", "lookahead_reason": "optimizer update is not affine in the gradient"}
  for problem in (ts, clipped):
    with pytest.raises(UserError, match=r"^lookahead=shared needs an optimizer update that is "
                       r"affine in the gradient .*: optimizer update is not affine") as e:
      run_collection(problem, CollectConfig(steps=1, lookahead="shared", quiet=True))
    assert "\n" not in str(e.value)


def test_auto_shares_only_where_a_layer_pays():
  """A first layer with fan-in 6 and 6 drawn tasks: recombining 6 outputs costs what
  recomputing them does, so auto keeps the general path and says why."""
  assert shared_work.plan(tiny_synthetic()).settings() == {
      "lookahead": "general", "lookahead_reason": "no layer's work is worth sharing "
      "(trunk/Dense_0: fan-in 6, not above twice the 6 drawn tasks)"}
  assert shared_work.plan(tiny_synthetic(), sample_tasks=2).path == "shared"
  assert shared_work.plan(tiny_synthetic(input_dim=24)).path == "shared"
  assert shared_work.plan(tiny_synthetic(), "shared").path == "shared"  # insisted on


def test_a_bad_lookahead_setting_is_a_user_error():
  with pytest.raises(UserError, match=r"^lookahead must be auto, shared or general, got 'fast'$"):
    run_collection(tiny_synthetic(), CollectConfig(steps=1, lookahead="fast", quiet=True))


def test_the_probe_finds_uniform_and_per_parameter_rates():
  params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
  assert shared_work.probe(OPTIMIZERS["decay_schedule"](), params).uniform == {"w": True,
                                                                                "b": True}
  plan = shared_work.probe(scaled_sgd(0.1), params)
  assert plan.path == "shared" and plan.uniform == {"w": False, "b": False}
  # Affine only for small gradients: the probe's large scale catches the clipping.
  clipped = optax.chain(optax.clip(0.5), optax.sgd(0.1))
  assert shared_work.probe(clipped, params).path == "general"


@pytest.mark.parametrize("strategy", ["map", pytest.param("vmap", marks=SLOW)])
def test_shared_step_traces_once(strategy):
  """No recompilation across steps, batches, draws and accumulated states."""
  ts = tiny_synthetic(input_dim=24)
  chex.clear_trace_counter()
  step = lookahead.make_collect_step(ts, MEASURES, sample_tasks=4, sample_bias="rare",
                                     strategy=strategy, lookahead="shared")
  step = jax.jit(chex.assert_max_traces(step, n=1), compiler_options=one_shot.CPU_OPTIONS)
  state = train.init_state(ts, jax.random.key(0))
  cstate = lookahead.init_collector(jax.random.key(1), ts.num_tasks, MEASURES)
  update_fn = jax.jit(train.make_update_fn(ts), compiler_options=one_shot.CPU_OPTIONS)
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  for _ in range(4):
    batch = next(batches)
    cstate = step(cstate, state.params, state.opt_state, batch)
    state, _ = update_fn(state, batch, jnp.ones(ts.num_tasks))
  assert int(cstate.draws.sum()) == 16
  assert step._cache_size() == 1  # pylint: disable=protected-access


def compiled_step(ts, measures=("principled",), **kw):
  state = jax.eval_shape(lambda: train.init_state(ts, jax.random.key(0)))
  cstate = jax.eval_shape(lambda: lookahead.init_collector(jax.random.key(1), ts.num_tasks,
                                                           measures))
  batch = jax.eval_shape(lambda: jax.tree.map(jnp.asarray, next(ts.train.eval_batches(
      ts.batch_size))))
  step = lookahead.make_collect_step(ts, measures, **kw)
  return jax.jit(step, compiler_options=one_shot.CPU_OPTIONS).lower(
      cstate, state.params, state.opt_state, batch).compile()


def test_the_gram_path_never_forms_the_first_layers_kernel_gradients():
  """The (s, in, width) per-task kernel gradients of the first layer are dead code."""
  ts = tiny_synthetic(2, 2, input_dim=40, trunk_width=16)   # first kernel: 40 × 16
  shape = re.compile(r"f32\[4,40,16\]")
  for strategy in ("map", "vmap"):
    assert not shape.search(compiled_step(ts, lookahead="shared", strategy=strategy).as_text())
  # What the check sees when they are formed.
  assert shape.search(compiled_step(ts, lookahead="general", strategy="map").as_text())


def test_chunks_give_unchunked_results():
  """10 pairs and self-pairs (and 4 TAG rows) in chunks of 3 and 4: with remainders."""
  with jax.enable_x64(True):
    ts = mlp(OPTIMIZERS["momentum"]())
    state, batch = trained_state(ts)
    whole = step_sums(ts, state, batch, strategy="vmap", lookahead="general")
    general = step_sums(ts, state, batch, strategy="vmap", map_batch_size=3, lookahead="general")
    shared = step_sums(ts, state, batch, strategy="vmap", map_batch_size=4, lookahead="shared")
  assert_same_gains(general, whole, rtol=1e-12)
  assert_same_gains(shared, whole)


def test_a_chunk_bounds_the_compiled_memory(monkeypatch):
  """Weights dominate (a 128-128 trunk, batch 8, 9 tasks): 45 lookaheads at once hold 45
  stepped copies of the weights, a chunk of 3 holds 3."""
  ts = tiny_synthetic(3, 3, input_dim=64, trunk_width=128, batch_size=8)
  temp = lambda **kw: compiled_step(ts, strategy="vmap", **kw).memory_analysis().temp_size_in_bytes
  whole = temp(lookahead="general", map_batch_size=45)
  assert temp(lookahead="general", map_batch_size=3) < 0.5 * whole
  assert temp(lookahead="shared", map_batch_size=3) < 0.5 * whole
  # The default chunk follows the memory budget (here: one combination at a time).
  monkeypatch.setattr(lookahead, "VMAP_CHUNK_BYTES", 1)
  assert temp(lookahead="general") < 0.5 * whole


_ON_A_MESH = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, {tests!r})
from conftest import tiny_synthetic
from tgroup import mesh as mesh_lib, train
from tgroup.gains import lookahead
ts = tiny_synthetic(2, 2, input_dim=24)
state = train.init_state(ts, jax.random.key(0))
batch = next(ts.train.train_batches(ts.batch_size, seed=0))
out = {{}}
for name in ("none", "combos:2", "data:2"):
  mesh = None if name == "none" else mesh_lib.MeshSpec.parse(name).build()
  step = jax.jit(lookahead.make_collect_step(ts, ("principled", "tag"), strategy="vmap",
                                             map_batch_size=3, mesh=mesh))
  assert step.plan.path == "shared"
  args = (lookahead.init_collector(jax.random.key(1), 4, ("principled", "tag")), state.params,
          state.opt_state, batch)
  if mesh is not None:
    args = mesh_lib.put(args[:3], mesh_lib.replicated(mesh)) + (
        mesh_lib.put_batch(batch, mesh, ts.batch_size),)
  cstate = step(*args)
  out[name] = {{k: np.asarray(v.sums).tolist() for k, v in cstate.measures.items()}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_shared_path_on_a_mesh_gives_the_single_device_gains():
  """Combinations split over 2 (faked) devices, or the batch: the same gains."""
  tests = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run([sys.executable, "-c", _ON_A_MESH.format(tests=tests)], env=env,
                        cwd=os.path.dirname(tests), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.splitlines()[-1])
  for mesh in ("combos:2", "data:2"):
    assert_same_gains({k: np.array(v) for k, v in out[mesh].items()},
                      {k: np.array(v) for k, v in out["none"].items()})
