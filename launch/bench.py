r"""Benchmarks of the hot paths (docs/contract.md): prints figures, writes JSON with --output.

  python -m launch.bench --output=bench.json

Figures (milliseconds unless a ratio), on the synthetic model (3 × 3 tasks) at
batch 256, each the median of interleaved rounds:
  plain_step_ms            one training step of the all-tasks network
  principled_lax_map_ms    one principled collection step (pairs + self-pairs) under
                           lax.map, --map_batch_size combinations per iteration
                           (default: the library's CPU default, 3)
  principled_vmap_ms       the same with vmap over combinations
  tag_ms                   one TAG collection step (auto strategy)
  floor_ms                 what a principled step cannot avoid: the m-row Jacobian
                           plus m(m+1)/2 forward passes at distinct parameters
                           (best of vmap and lax.map at every batch size measured)
  loop_ms                  the same collection as a Python loop that copies the
                           parameters and optimizer state and runs each combination
  principled_over_floor    best of lax.map/vmap over floor_ms (target <= 1.3)
  loop_over_principled     loop_ms over the best principled step (target >= 2)
With --map_batch_sizes=1,2,3,...: principled_lax_map_b<N>_ms for each N (a sweep,
the measurement behind the CPU default).

Landscape (training-free) figures, same model and batch:
  landscape_fast_ms            one jitted dissimilarity pass over 256 samples, dense
                               layers factorised, at the default θ_0 (identical heads:
                               one backward pass per head output)
  landscape_materialized_ms    the same with every per-sample gradient materialised
  landscape_speedup            their ratio (target >= 10)
  landscape_per_task_ms        the fast pass with one backward pass per task (what θ_0
                               with distinct heads costs: a checkpoint, or
                               --landscape_head_init=independent)
  landscape_speedup_per_task   landscape_materialized_ms / landscape_per_task_ms
  landscape_general_heads_ms   the per-task pass without the per-task-head shortcut
                               (heads through the general pairwise L1, as any dense layer)
  landscape_to_groups_s        wall time from data to groups with the landscape method
                               (default synthetic flags: 256 samples, one θ_0, GAT, GMM)
                               in a fresh process without a persistent compilation
                               cache, every compilation included
  principled_to_groups_s       the same for principled gains (the 2000-step collection
                               run, then the MIP)
  end_to_end_speedup           principled_to_groups_s / landscape_to_groups_s (target >= 5)
  *_to_groups_{trace,lower,compile,other}_s
                               where a cold run's seconds go (from JAX's monitoring
                               events): tracing Python into jaxprs, lowering to
                               StableHLO, XLA compilation, and the rest (running
                               the programs, eager ops, host work such as the MIP)
  *_cached_s, end_to_end_speedup_cached
                               the same in a fresh process whose compiled programs
                               come from JAX's persistent cache, filled by an earlier
                               untimed process (the launchers' --compilation_cache:
                               what a second launch of the same problem costs)

With --mesh (as the launchers'), the collection figures run on the collection
stage's mesh and end_to_end's runs on the run's mesh; the other figures on one
device. Record both, one device and --mesh=auto, on an accelerator.

Mesh (--sections=mesh, not in the default sections): per-device bytes of one
collection step and one step of 8 group networks on 1, 2, 4 and 8 devices, from
XLA's compiled memory analysis (launch/bench_mesh.py, which names each figure),
on a model of --mesh_trunk_width.
"""
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch import bench_timing
from tgroup import io
from tgroup import mesh as mesh_lib
from tgroup import train
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, lookahead, run_collection
from tgroup.gains import combinations
from tgroup.grouping import Constraints, solve_grouping
from tgroup.landscape import cluster as landscape_cluster
from tgroup.landscape import measure as landscape_measure

_OUTPUT = flags.DEFINE_string("output", None, "Write {device, figures} JSON here.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size of every measured step.")
_CLUSTERS = flags.DEFINE_integer("num_clusters", 3, "Synthetic clusters.")
_TASKS_PER_CLUSTER = flags.DEFINE_integer("tasks_per_cluster", 3, "Synthetic tasks per cluster.")
_ROUNDS = flags.DEFINE_integer("rounds", 30, "Timed rounds per figure (median reported).")
_MAP_BATCH_SIZE = flags.DEFINE_integer("map_batch_size", lookahead.CPU_MAP_BATCH_SIZE,
                                       "lax.map batch size of principled_lax_map_ms.")
_SECTIONS = flags.DEFINE_list("sections", "collection,landscape,end_to_end",
                              "Which groups of figures to measure.")
_MESH_TRUNK_WIDTH = flags.DEFINE_integer(
    "mesh_trunk_width", 256, "Trunk width of the mesh section's model: wide enough that "
    "weights, not a batch's activations, take most of a step's memory.")
_MESH = flags.DEFINE_string(
    "mesh", None, "Measure on several devices (AXIS:N[,AXIS:N] or auto, as the launchers' "
    "--mesh): the collection figures on the collection stage's mesh, end_to_end's runs with "
    "it. Unset: one device.")
_MAP_BATCH_SIZES = flags.DEFINE_list("map_batch_sizes", [], "Also time lax.map at each of "
                                     "these batch sizes (1 = one combination at a time).")


def collection_figures(ts, rounds: int, map_batch_size: int, sweep: list[int],
                       mesh: str | None = None) -> dict[str, float]:
  """The figures of the issue that introduced collection (see the module docstring).

  With ``mesh``, every step runs on the collection stage's mesh (tgroup.mesh).
  """
  m = ts.num_tasks
  state = train.init_state(ts, jax.random.key(0))
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  update_fn = jax.jit(train.make_update_fn(ts))
  for _ in range(5):  # a few steps so the momentum state is not all zeros
    state, _ = update_fn(state, next(batches), jnp.ones(m))
  on = mesh_lib.stage_mesh(mesh, "collect", batch_size=ts.batch_size)
  batch = (mesh_lib.put_batch(next(batches), on, ts.batch_size) if on
           else jax.device_put(next(batches)))
  if on:
    state = mesh_lib.put(state, mesh_lib.replicated(on))
  params, opt_state = state.params, state.opt_state
  ones = jnp.ones(m)

  def collector(measures, strategy, batch_size=None):
    step = jax.jit(lookahead.make_collect_step(ts, measures, strategy=strategy,
                                               map_batch_size=batch_size, mesh=on))
    cstate = lookahead.init_collector(jax.random.key(1), m, measures)
    return lambda: step(cstate, params, opt_state, batch)

  losses_fn = lambda p: ts.task_losses(p, batch)
  lay = combinations.layout(m, ("principled",))
  num_combos = len(lay.full_weights)  # m(m+1)/2
  stacked = jax.tree.map(lambda p: jnp.stack([p * (1 + 1e-3 * k) for k in range(num_combos)]),
                         params)

  def floor(strategy, batch_size=None):
    def fn(stacked, params):
      losses, jac = lookahead.per_task_gradients(losses_fn, params, jnp.arange(m), m)
      after = (jax.lax.map(losses_fn, stacked, batch_size=batch_size) if strategy == "map"
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

  fns = {
      "plain_step_ms": lambda: update_fn(state, batch, ones),
      "principled_lax_map_ms": collector(("principled",), "map", map_batch_size),
      "principled_vmap_ms": collector(("principled",), "vmap"),
      "tag_ms": collector(("tag",), "auto"),
      "loop_ms": loop,
      "floor_vmap": floor("vmap"),
  }
  for b in sorted({1, map_batch_size, *sweep}):
    fns[f"floor_map_b{b}"] = floor("map", b)
  for b in sweep:
    fns[f"principled_lax_map_b{b}_ms"] = collector(("principled",), "map", b)
  ms = bench_timing.time_interleaved(fns, rounds=rounds)
  best = min(ms["principled_lax_map_ms"], ms["principled_vmap_ms"])
  ms["floor_ms"] = min(ms.pop(k) for k in list(ms) if k.startswith("floor_"))
  ms["principled_over_floor"] = best / ms["floor_ms"]
  ms["loop_over_principled"] = ms["loop_ms"] / best
  return ms


def landscape_figures(ts, rounds: int) -> dict[str, float]:
  """One dissimilarity pass at the batch size, fast and materialised."""
  params = landscape_measure.same_heads(ts.init_params(jax.random.key(0)))
  batch = jax.device_put(next(ts.train.eval_batches(ts.batch_size)))
  run = functools.partial(landscape_measure._jitted, ts, params, batch)
  fns = {"landscape_fast_ms": functools.partial(
             run, "fast", shared_head=landscape_measure.identical_heads(ts, params)),
         "landscape_materialized_ms": functools.partial(run, "materialized"),
         "landscape_per_task_ms": functools.partial(run, "fast"),
         "landscape_general_heads_ms": functools.partial(run, "fast", task_heads=False)}
  ms = bench_timing.time_interleaved(fns, rounds=rounds)
  ms["landscape_speedup"] = ms["landscape_materialized_ms"] / ms["landscape_fast_ms"]
  ms["landscape_speedup_per_task"] = (ms["landscape_materialized_ms"]
                                      / ms["landscape_per_task_ms"])
  return ms


def data_to_groups_seconds(method: str, num_clusters: int, tasks_per_cluster: int, *,
                           by_program: bool = False, mesh: str | None = None) -> dict:
  """Wall time from data to groups with one method, in this process, and its parts.

  Imports and JAX's backend start-up come before the clock starts; compilation
  (or loading compiled programs from a persistent cache) is inside it.

  Returns:
    ``total_s``, and of it the seconds spent tracing Python into jaxprs
    (``trace_s``), lowering them to StableHLO (``lower_s``) and compiling or
    loading from the cache (``compile_s``), from JAX's monitoring events;
    ``other_s`` is the rest: running the programs, eager ops and host work.
    With ``by_program``, also ``programs``: the three stages per jitted
    function, slowest first.
  """
  importlib.import_module("sklearn.mixture")  # the import is not part of the figure
  jax.block_until_ready(jnp.zeros(1) + 1)
  with bench_timing.compile_stage_seconds() as stages:
    start = time.perf_counter()
    ts = synthetic.synthetic(num_clusters, tasks_per_cluster)
    if method == "landscape":
      on = mesh_lib.stage_mesh(mesh, "landscape", batch_size=ts.batch_size)
      d = landscape_measure.landscape_dissimilarity(ts, num_samples=256,
                                                    batch_size=ts.batch_size, mesh=on)
      landscape_cluster.landscape_groups(d, ts.tasks, jax.random.key(0),
                                         num_groups=num_clusters)
    else:
      gains = run_collection(ts, CollectConfig(measures=("principled",), quiet=True,
                                               mesh=mesh)).gains
      solve_grouping(ts.tasks, gains["principled"].gains, "principled",
                     Constraints(num_groups=num_clusters))
    total = time.perf_counter() - start
  # The rest is what no stage covers; the stages' own sum would count twice any
  # stage nested in another (none was seen: tests/test_bench.py checks they add up).
  covered = bench_timing.union_seconds([(a, b) for _, _, a, b in stages.spans])
  result = {"total_s": total, **stages.seconds(), "other_s": total - covered}
  if by_program:
    result["programs"] = stages.by_program()
  return result


def end_to_end_figures(num_clusters: int, tasks_per_cluster: int, mesh: str | None = None
                       ) -> dict[str, float]:
  """Each method in fresh processes: cold (no persistent compilation cache, so
  every program compiles), then with a cache that an earlier, untimed process
  filled (what a second launch of the same problem costs). The cold run has no
  cache at all: with one, it would also pay for serialising every program."""
  fig = {}
  code = ("import json; from launch import bench; "
          "print(json.dumps(bench.data_to_groups_seconds({!r}, {}, {}, mesh={!r})))")
  run = lambda method, env: json.loads(subprocess.run(
      [sys.executable, "-c", code.format(method, num_clusters, tasks_per_cluster, mesh)], env=env,
      check=True, capture_output=True, text=True).stdout.splitlines()[-1])
  plain = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  for method in ("landscape", "principled"):
    cold = run(method, plain)
    fig[f"{method}_to_groups_s"] = cold["total_s"]
    for part in ("trace", "lower", "compile", "other"):
      fig[f"{method}_to_groups_{part}_s"] = cold[f"{part}_s"]
    with tempfile.TemporaryDirectory() as cache:
      env = dict(plain, JAX_COMPILATION_CACHE_DIR=cache,
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
      run(method, env)
      fig[f"{method}_to_groups_cached_s"] = run(method, env)["total_s"]
  fig["end_to_end_speedup"] = fig["principled_to_groups_s"] / fig["landscape_to_groups_s"]
  fig["end_to_end_speedup_cached"] = (fig["principled_to_groups_cached_s"]
                                      / fig["landscape_to_groups_cached_s"])
  return fig


def mesh_figures() -> dict[str, float]:
  """launch.bench_mesh's per-device memory figures, from a process of their own.

  On a host with fewer than 8 accelerators the figures come from 8 CPU devices
  faked by XLA (compiled memory analysis needs no real device memory).
  """
  env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "")
                                    + " --xla_force_host_platform_device_count=8").strip())
  if len(jax.devices()) < 8:
    env["JAX_PLATFORMS"] = "cpu"
  args = [str(a) for a in (_CLUSTERS.value, _TASKS_PER_CLUSTER.value, _BATCH_SIZE.value,
                           _MESH_TRUNK_WIDTH.value)]
  out = subprocess.run([sys.executable, "-m", "launch.bench_mesh", *args], env=env, check=True,
                       capture_output=True, text=True, timeout=1800)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  ts = synthetic.synthetic(_CLUSTERS.value, _TASKS_PER_CLUSTER.value,
                           batch_size=_BATCH_SIZE.value)
  try:
    sweep = [int(b) for b in _MAP_BATCH_SIZES.value]
  except ValueError:
    raise app.UsageError(f"--map_batch_sizes must be integers: {_MAP_BATCH_SIZES.value}")
  try:
    spec = mesh_lib.MeshSpec.parse(_MESH.value)
    if spec is not None:
      spec.check(len(jax.devices()), batch_size=_BATCH_SIZE.value, chunk_size=1)
  except UserError as e:
    raise app.UsageError(str(e)) from None
  sections = set(_SECTIONS.value)
  unknown = sections - {"collection", "landscape", "end_to_end", "mesh"}
  if unknown:
    raise app.UsageError(f"unknown --sections {sorted(unknown)}")
  figures = {}
  if "collection" in sections:
    figures.update(collection_figures(ts, _ROUNDS.value, _MAP_BATCH_SIZE.value, sweep,
                                      mesh=_MESH.value))
  if "landscape" in sections:
    figures.update(landscape_figures(ts, _ROUNDS.value))
  if "end_to_end" in sections:
    figures.update(end_to_end_figures(_CLUSTERS.value, _TASKS_PER_CLUSTER.value, _MESH.value))
  if "mesh" in sections:
    figures.update(mesh_figures())
  result = {"device": bench_timing.device_description(),
            "figures": {k: round(v, 4) for k, v in figures.items()},
            "settings": {"batch_size": _BATCH_SIZE.value, "num_tasks": ts.num_tasks,
                         "rounds": _ROUNDS.value, "map_batch_size": _MAP_BATCH_SIZE.value,
                         "jax": jax.__version__,
                         **({"mesh": _MESH.value} if _MESH.value else {})}}
  print(json.dumps(result, indent=1))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, result)


if __name__ == "__main__":
  app.run(main)
