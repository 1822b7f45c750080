r"""Benchmarks of the hot paths (DESIGN §6): prints figures, writes JSON with --output.

  python -m launch.bench --output=bench.json

Figures (milliseconds unless a ratio), on the synthetic model (3 × 3 tasks) at
batch 256, each the median of interleaved rounds:
  plain_step_ms            one training step of the all-tasks network
  principled_lax_map_ms    one principled collection step (pairs + self-pairs), lax.map
  principled_vmap_ms       the same with vmap over combinations
  tag_ms                   one TAG collection step (auto strategy)
  floor_ms                 what a principled step cannot avoid: the m-row Jacobian
                           plus m(m+1)/2 forward passes at distinct parameters
                           (best of lax.map and vmap)
  loop_ms                  the same collection as a Python loop that copies the
                           parameters and optimizer state and runs each combination
  principled_over_floor    best of lax.map/vmap over floor_ms (target <= 1.3)
  loop_over_principled     loop_ms over the best principled step (target >= 2)
"""
import json

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import benchmarking
from tgroup import io
from tgroup import train
from tgroup.benchmarks import synthetic
from tgroup.gains import lookahead
from tgroup.gains import combinations

_OUTPUT = flags.DEFINE_string("output", None, "Write {device, figures} JSON here.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size of every measured step.")
_CLUSTERS = flags.DEFINE_integer("num_clusters", 3, "Synthetic clusters.")
_TASKS_PER_CLUSTER = flags.DEFINE_integer("tasks_per_cluster", 3, "Synthetic tasks per cluster.")
_ROUNDS = flags.DEFINE_integer("rounds", 30, "Timed rounds per figure (median reported).")


def collection_figures(ts, rounds: int) -> dict[str, float]:
  """The figures of the issue that introduced collection (see the module docstring)."""
  m = ts.num_tasks
  state = train.init_state(ts, jax.random.key(0))
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  update_fn = jax.jit(train.make_update_fn(ts))
  for _ in range(5):  # a few steps so the momentum state is not all zeros
    state, _ = update_fn(state, next(batches), jnp.ones(m))
  batch = jax.device_put(next(batches))
  params, opt_state = state.params, state.opt_state
  ones = jnp.ones(m)

  def collector(measures, strategy):
    step = jax.jit(lookahead.make_collect_step(ts, measures, strategy=strategy))
    cstate = lookahead.init_collector(jax.random.key(1), m, measures)
    return lambda: step(cstate, params, opt_state, batch)

  losses_fn = lambda p: ts.task_losses(p, batch)
  lay = combinations.layout(m, ("principled",))
  num_combos = len(lay.full_weights)  # m(m+1)/2
  stacked = jax.tree.map(lambda p: jnp.stack([p * (1 + 1e-3 * k) for k in range(num_combos)]),
                         params)

  def floor(strategy):
    def fn(stacked, params):
      losses, jac = lookahead.per_task_gradients(losses_fn, params, jnp.arange(m), m)
      after = (jax.lax.map(losses_fn, stacked) if strategy == "map"
               else jax.vmap(losses_fn)(stacked))
      return losses, jac, after
    fn = jax.jit(fn)
    return lambda: fn(stacked, params)

  jac_fn = jax.jit(lambda p: lookahead.per_task_gradients(losses_fn, p, jnp.arange(m), m))

  @jax.jit
  def one_lookahead(p, o, jac, w):
    grads = jax.tree.map(lambda j: jnp.tensordot(w, j, axes=1), jac)
    updates, _ = ts.optimizer.update(grads, o, p)
    return losses_fn(optax.apply_updates(p, updates))

  weights = [jnp.asarray(w) for w in lay.full_weights]

  def loop():
    base, jac = jac_fn(params)
    ratios = []
    for w in weights:
      p = jax.tree.map(jnp.copy, params)
      o = jax.tree.map(jnp.copy, opt_state)
      ratios.append(np.asarray(one_lookahead(p, o, jac, w)) / np.asarray(base))
    ratios = np.stack(ratios)
    return 1.0 - ratios[lay.pair_or_self, np.arange(m)[None, :]]

  ms = benchmarking.time_interleaved({
      "plain_step_ms": lambda: update_fn(state, batch, ones),
      "principled_lax_map_ms": collector(("principled",), "map"),
      "principled_vmap_ms": collector(("principled",), "vmap"),
      "tag_ms": collector(("tag",), "auto"),
      "floor_lax_map_ms": floor("map"),
      "floor_vmap_ms": floor("vmap"),
      "loop_ms": loop,
  }, rounds=rounds)
  best = min(ms["principled_lax_map_ms"], ms["principled_vmap_ms"])
  ms["floor_ms"] = min(ms.pop("floor_lax_map_ms"), ms.pop("floor_vmap_ms"))
  ms["principled_over_floor"] = best / ms["floor_ms"]
  ms["loop_over_principled"] = ms["loop_ms"] / best
  return ms


def main(argv):
  del argv
  ts = synthetic.synthetic(_CLUSTERS.value, _TASKS_PER_CLUSTER.value,
                           batch_size=_BATCH_SIZE.value)
  figures = collection_figures(ts, _ROUNDS.value)
  result = {"device": benchmarking.device_description(),
            "figures": {k: round(v, 4) for k, v in figures.items()},
            "settings": {"batch_size": _BATCH_SIZE.value, "num_tasks": ts.num_tasks,
                         "rounds": _ROUNDS.value, "jax": jax.__version__}}
  print(json.dumps(result, indent=1))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, result)


if __name__ == "__main__":
  app.run(main)
