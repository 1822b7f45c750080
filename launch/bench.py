r"""Benchmarks of the hot paths (docs/contract.md): prints figures, writes JSON with --output.

  python -m launch.bench --output=bench.json

Figures (milliseconds unless a ratio), on --model (``synthetic``: the synthetic
benchmark's model, 3 × 3 tasks, a 16-16-16 MLP; ``mlp784``: the same tasks with a
784-256-256 MLP) at batch 256, SGD with momentum 0.9, each the median of
interleaved rounds:
  plain_step_ms            one training step of the all-tasks network
  principled_lax_map_ms    one principled collection step (pairs + self-pairs) on the
                           general lookahead path (an optimizer call per combination)
                           under lax.map, --map_batch_size combinations per iteration
                           (default: the library's CPU default, 3)
  principled_vmap_ms       the same with vmap over combinations
  principled_shared_lax_map_ms, principled_shared_vmap_ms
                           the same on the shared path (tgroup.gains.shared_work:
                           no optimizer call per combination, the first layer's work
                           shared); only for an optimizer that qualifies
  tag_ms                   one TAG collection step (auto strategy and lookahead path)
  floor_ms                 what a principled step on the general path cannot avoid:
                           the m-row Jacobian plus m(m+1)/2 forward passes at
                           distinct parameters (best of vmap and lax.map at every
                           batch size measured)
  loop_ms                  the same collection as a Python loop that copies the
                           parameters and optimizer state and runs each combination
  principled_over_floor    the best principled step (either path) over floor_ms
                           (target <= 1.3; <= 0.5 on mlp784 with the shared path)
  principled_general_over_floor
                           the best general-path step over floor_ms (the figure
                           principled_over_floor was before the shared path)
  loop_over_principled     loop_ms over the best principled step (target >= 2)
With --map_batch_sizes=1,2,3,...: principled_lax_map_b<N>_ms for each N (a sweep,
the measurement behind the CPU default), and principled_shared_lax_map_b<N>_ms.
With --shared_task_counts=20,40: principled_shared_m<M>_ms, the shared path's
lax.map step with M tasks (one planted cluster; the model is --model's with M
heads): how its cost grows with the number of tasks.

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

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch import bench_scaling
from launch import bench_timing
from launch import cli
from tgroup import io
from tgroup import mesh as mesh_lib
from tgroup import train
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, lookahead, run_collection
from tgroup.gains import combinations
from tgroup.gains import shared_work
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
_MODEL = flags.DEFINE_enum("model", "synthetic", ["synthetic", "mlp784"],
                           "The collection and landscape sections' model: the synthetic "
                           "benchmark's 16-16-16 MLP, or a 784-256-256 MLP on the same tasks.")
_SHARED_TASK_COUNTS = flags.DEFINE_list(
    "shared_task_counts", [], "Also time the shared path's principled step (lax.map) with "
    "each of these numbers of tasks.")
_SECTIONS = flags.DEFINE_list("sections", "collection,landscape,end_to_end",
                              "Which groups of figures to measure: collection, landscape, "
                              "end_to_end, mesh, scaling.")
_SCALING_TASKS = flags.DEFINE_list(
    "scaling_tasks", [str(m) for m in bench_scaling.DEFAULT_TASKS],
    "Numbers of tasks of the scaling section (each a planted shape of launch/bench_scaling.py).")
_SCALING_MEASURES = flags.DEFINE_list(
    "scaling_measures", list(bench_scaling.MEASURES),
    f"What the scaling section measures at each size: {', '.join(bench_scaling.MEASURES)}.")
_SCALING_SAMPLE_TASKS = flags.DEFINE_integer(
    "scaling_sample_tasks", 10, "Tasks drawn per collected step by the scaling section's "
    "sampled collection (on the pair-cover schedule).")
_SCALING_EXACT_MAX_TASKS = flags.DEFINE_integer(
    "scaling_exact_max_tasks", 40, "Up to this many tasks the scaling section also times data "
    "to groups with every task drawn at every step (m(m+1)/2 lookaheads per step).")
_SCALING_MIP_NOISE = flags.DEFINE_float(
    "scaling_mip_noise", 0.5, "Noise of the planted gains matrices the scaling section groups.")
_SCALING_MIP_TIME_LIMIT = flags.DEFINE_float(
    "scaling_mip_time_limit", 120.0, "Time limit of each grouping MIP of the scaling section "
    "(seconds); the gap it reached is reported.")
_SCALING_PLOT = flags.DEFINE_string("scaling_plot", None, "Write the scaling curves here as a "
                                    "PNG (log axes); unset: next to --output, if given.")
_MESH_TRUNK_WIDTH = flags.DEFINE_integer(
    "mesh_trunk_width", 256, "Trunk width of the mesh section's model: wide enough that "
    "weights, not a batch's activations, take most of a step's memory.")
_MESH = flags.DEFINE_string(
    "mesh", None, "Measure on several devices (AXIS:N[,AXIS:N] or auto, as the launchers' "
    "--mesh): the collection figures on the collection stage's mesh, end_to_end's runs with "
    "it. Unset: one device.")
_MAP_BATCH_SIZES = flags.DEFINE_list("map_batch_sizes", [], "Also time lax.map at each of "
                                     "these batch sizes (1 = one combination at a time).")


MODELS = {"synthetic": {}, "mlp784": {"input_dim": 784, "trunk_width": 256}}


def taskset(model: str, num_clusters: int, tasks_per_cluster: int, batch_size: int):
  """The TaskSet of ``--model`` (see :data:`MODELS`)."""
  return synthetic.synthetic(num_clusters, tasks_per_cluster, batch_size=batch_size,
                             **MODELS[model])


def collection_figures(ts, rounds: int, map_batch_size: int, sweep: list[int],
                       mesh: str | None = None, more_tasks=()) -> dict[str, float]:
  """The collection figures of the module docstring.

  With ``mesh``, every step runs on the collection stage's mesh (tgroup.mesh).
  ``more_tasks``: TaskSets with other numbers of tasks, whose shared-path step
  is timed as ``principled_shared_m<M>_ms``.
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

  def collector(measures, strategy, batch_size=None, path="general"):
    step = jax.jit(lookahead.make_collect_step(ts, measures, strategy=strategy,
                                               map_batch_size=batch_size, mesh=on,
                                               lookahead=path))
    cstate = lookahead.init_collector(jax.random.key(1), m, measures)
    return lambda: step(cstate, params, opt_state, batch)

  try:  # whether the optimizer qualifies for the shared path (auto also asks if it pays)
    shared = shared_work.plan(ts, "shared").path == "shared"
  except UserError:
    shared = False

  losses_fn = lambda p: ts.task_losses(p, batch)
  lay = combinations.layout(m, ("principled",))
  num_combos = len(lay.full_weights)  # m(m+1)/2
  stacked = jax.tree.map(lambda p: jnp.stack([p * (1 + 1e-3 * k) for k in range(num_combos)]),
                         params)

  def floor(strategy, batch_size=None):
    def fn(stacked, params):
      losses, jac = lookahead.per_task_gradients(losses_fn, params, jnp.arange(m), m,
                                                 strategy=strategy)
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
      "tag_ms": collector(("tag",), "auto", path="auto"),
      "loop_ms": loop,
      "floor_vmap": floor("vmap"),
  }
  for b in sorted({1, map_batch_size, *sweep}):
    fns[f"floor_map_b{b}"] = floor("map", b)
  if shared:
    fns["principled_shared_lax_map_ms"] = collector(("principled",), "map", map_batch_size,
                                                    path="shared")
    fns["principled_shared_vmap_ms"] = collector(("principled",), "vmap", path="shared")
  for b in sweep:
    fns[f"principled_lax_map_b{b}_ms"] = collector(("principled",), "map", b)
    if shared:
      fns[f"principled_shared_lax_map_b{b}_ms"] = collector(("principled",), "map", b,
                                                            path="shared")
  for other in more_tasks:
    fns[f"principled_shared_m{other.num_tasks}_ms"] = _shared_step(other, map_batch_size, on)
  ms = bench_timing.time_interleaved(fns, rounds=rounds)
  general = min(ms["principled_lax_map_ms"], ms["principled_vmap_ms"])
  best = min([general] + [ms[k] for k in ("principled_shared_lax_map_ms",
                                          "principled_shared_vmap_ms") if k in ms])
  ms["floor_ms"] = min(ms.pop(k) for k in list(ms) if k.startswith("floor_"))
  ms["principled_over_floor"] = best / ms["floor_ms"]
  ms["principled_general_over_floor"] = general / ms["floor_ms"]
  ms["loop_over_principled"] = ms["loop_ms"] / best
  return ms


def _shared_step(ts, map_batch_size: int, mesh):
  """A timed callable: one shared-path principled step (lax.map) of ``ts``."""
  state = train.init_state(ts, jax.random.key(0))
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  update_fn = jax.jit(train.make_update_fn(ts))
  for _ in range(5):
    state, _ = update_fn(state, next(batches), jnp.ones(ts.num_tasks))
  batch = (mesh_lib.put_batch(next(batches), mesh, ts.batch_size) if mesh
           else jax.device_put(next(batches)))
  if mesh:
    state = mesh_lib.put(state, mesh_lib.replicated(mesh))
  step = jax.jit(lookahead.make_collect_step(ts, ("principled",), strategy="map",
                                             map_batch_size=map_batch_size, mesh=mesh,
                                             lookahead="shared"))
  cstate = lookahead.init_collector(jax.random.key(1), ts.num_tasks, ("principled",))
  return lambda: step(cstate, state.params, state.opt_state, batch)


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
                           by_program: bool = False, mesh: str | None = None,
                           sample_tasks: int | None = None) -> dict:
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
                                         num_groups=max(2, num_clusters))
    else:
      sampled = {} if sample_tasks is None else {"sample_tasks": sample_tasks,
                                                 "sample_bias": "pairs"}
      gains = run_collection(ts, CollectConfig(measures=("principled",), quiet=True,
                                               mesh=mesh, **sampled)).gains
      solve_grouping(ts.tasks, gains["principled"].gains, "principled",
                     Constraints(num_groups=max(2, num_clusters)))
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


def fresh_process_seconds(method: str, num_clusters: int, tasks_per_cluster: int,
                          sample_tasks: int | None = None) -> dict[str, float]:
  """One method's data → groups seconds in fresh processes: ``cold`` (no persistent
  compilation cache) and ``cached`` (the cache filled by an earlier, untimed process)."""
  code = ("import json; from launch import bench; "
          "print(json.dumps(bench.data_to_groups_seconds({!r}, {}, {}, sample_tasks={!r})))"
          ).format(method, num_clusters, tasks_per_cluster, sample_tasks)
  run = lambda env: json.loads(subprocess.run(
      [sys.executable, "-c", code], env=env, check=True, capture_output=True,
      text=True).stdout.splitlines()[-1])["total_s"]
  plain = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  out = {"cold": run(plain)}
  with tempfile.TemporaryDirectory() as cache:
    env = dict(plain, JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    run(env)
    out["cached"] = run(env)
  return out


def scaling_settings() -> dict:
  """The scaling section's flags, checked (a UserError names a bad one)."""
  try:
    sizes = [int(m) for m in _SCALING_TASKS.value]
  except ValueError:
    raise UserError(f"--scaling_tasks must be integers, got {','.join(_SCALING_TASKS.value)}"
                    ) from None
  for m in sizes:
    bench_scaling.shape(m)
  measures = bench_scaling.check_measures(_SCALING_MEASURES.value)
  if _SCALING_SAMPLE_TASKS.value < 2:
    raise UserError(f"--scaling_sample_tasks must be >= 2, got {_SCALING_SAMPLE_TASKS.value}")
  limit = _SCALING_MIP_TIME_LIMIT.value
  if not limit > 0:
    raise UserError(f"--scaling_mip_time_limit must be > 0, got {limit}")
  return {"sizes": sizes, "measures": measures}


def scaling_figures(settings: dict) -> dict[str, float]:
  """launch/bench_scaling.py's curves, with progress on stderr."""
  return bench_scaling.scaling_figures(
      settings["sizes"], settings["measures"], rounds=_ROUNDS.value,
      sample_tasks=_SCALING_SAMPLE_TASKS.value, exact_max_tasks=_SCALING_EXACT_MAX_TASKS.value,
      mip_noise=_SCALING_MIP_NOISE.value, mip_time_limit_s=_SCALING_MIP_TIME_LIMIT.value,
      run_method=fresh_process_seconds, log=lambda line: print(line, file=sys.stderr,
                                                                flush=True))


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
  try:
    sweep = [int(b) for b in _MAP_BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--map_batch_sizes must be integers: {_MAP_BATCH_SIZES.value}") from None
  try:
    task_counts = [int(m) for m in _SHARED_TASK_COUNTS.value]
  except ValueError:
    raise UserError(f"--shared_task_counts must be integers: {_SHARED_TASK_COUNTS.value}"
                    ) from None
  if any(m < 2 for m in task_counts):
    raise UserError(f"--shared_task_counts must be >= 2: {_SHARED_TASK_COUNTS.value}")
  ts = taskset(_MODEL.value, _CLUSTERS.value, _TASKS_PER_CLUSTER.value, _BATCH_SIZE.value)
  spec = mesh_lib.MeshSpec.parse(_MESH.value)
  if spec is not None:
    spec.check(len(jax.devices()), batch_size=_BATCH_SIZE.value, chunk_size=1)
  sections = set(_SECTIONS.value)
  unknown = sections - {"collection", "landscape", "end_to_end", "mesh", "scaling"}
  if unknown:
    raise UserError(f"unknown --sections {sorted(unknown)}; known: collection, landscape, "
                    "end_to_end, mesh, scaling")
  scaling = scaling_settings() if "scaling" in sections else None
  figures = {}
  if "collection" in sections:
    more = [taskset(_MODEL.value, 1, m, _BATCH_SIZE.value) for m in task_counts]
    figures.update(collection_figures(ts, _ROUNDS.value, _MAP_BATCH_SIZE.value, sweep,
                                      mesh=_MESH.value, more_tasks=more))
  if "landscape" in sections:
    figures.update(landscape_figures(ts, _ROUNDS.value))
  if "end_to_end" in sections:
    figures.update(end_to_end_figures(_CLUSTERS.value, _TASKS_PER_CLUSTER.value, _MESH.value))
  if "mesh" in sections:
    figures.update(mesh_figures())
  if scaling is not None:
    figures.update(scaling_figures(scaling))
  result = {"device": bench_timing.device_description(),
            "figures": {k: round(v, 4) for k, v in figures.items()},
            "settings": {"batch_size": _BATCH_SIZE.value, "num_tasks": ts.num_tasks,
                         "rounds": _ROUNDS.value, "map_batch_size": _MAP_BATCH_SIZE.value,
                         "model": _MODEL.value,
                         "jax": jax.__version__,
                         **({"mesh": _MESH.value} if _MESH.value else {})}}
  if scaling is not None:
    result["settings"]["scaling"] = {
        "tasks": scaling["sizes"], "measures": list(scaling["measures"]),
        "shapes": {m: bench_scaling.SHAPES[m] for m in scaling["sizes"]},
        "sample_tasks": _SCALING_SAMPLE_TASKS.value,
        "exact_max_tasks": _SCALING_EXACT_MAX_TASKS.value,
        "mip_noise": _SCALING_MIP_NOISE.value, "mip_time_limit_s": _SCALING_MIP_TIME_LIMIT.value}
  print(json.dumps(result, indent=1))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, result)
  plot = _SCALING_PLOT.value or (os.path.splitext(_OUTPUT.value)[0] + "_scaling.png"
                                 if _OUTPUT.value else None)
  if scaling is not None and plot:
    bench_scaling.plot(figures, plot, result["device"])


if __name__ == "__main__":
  cli.run(main)
