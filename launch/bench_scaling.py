"""How the cost of finding groups grows with the number of tasks (--sections=scaling).

For each m in ``--scaling_tasks`` (default 5, 9, 15, 20, 40, 100) the planted
synthetic problem of that size (:data:`SHAPES`: clusters × tasks per cluster) is
measured at batch 256:

  collect_{exact,sampled,first_order}_ms[m]
                      one collection step: principled with every task drawn
                      (m(m+1)/2 lookaheads), principled with ``--scaling_sample_tasks``
                      tasks drawn on the pair-cover schedule, and first-order gains of
                      every task (one Jacobian, no lookahead)
  collect_*_bytes[m]  what that step's compiled program holds (arguments, outputs and
                      temporaries, from XLA's memory analysis)
  train_step_ms[m], train_step_bytes[m]
                      one training step of the all-tasks network, for scale
  landscape_ms[m]     one landscape dissimilarity pass over 256 samples
  mip_s[m], mip_gap[m]
                      solving the grouping of a planted gains matrix (noise
                      ``--scaling_mip_noise``) into the planted number of groups, and
                      the relative gap to the certified bound it reached
  landscape_to_groups_s[m], principled_to_groups_s[m], end_to_end_speedup[m]
                      data → groups wall time of each method in a fresh process (cold:
                      every program compiles), and their ratio; principled collects
                      with every task drawn up to ``--scaling_exact_max_tasks`` tasks and
                      with the sampled settings above (``principled_sampled_*``)
  *_cached_s[m], end_to_end_speedup_cached[m]
                      the same with JAX's persistent compilation cache filled by an
                      earlier untimed process

Figures are keyed ``name[m]`` in the JSON; ``--scaling_plot`` writes them as a PNG
with log axes.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp

from launch import bench_timing
from launch.bench_mesh import device_bytes
from tgroup import train
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.gains import lookahead
from tgroup.grouping import Constraints, solve_grouping
from tgroup.grouping.planted import planted_gains
from tgroup.landscape import measure as landscape_measure

# m -> (clusters, tasks per cluster) of the planted problem measured at that size.
SHAPES = {5: (1, 5), 9: (3, 3), 15: (3, 5), 20: (4, 5), 40: (8, 5), 100: (10, 10)}
DEFAULT_TASKS = (5, 9, 15, 20, 40, 100)
MEASURES = ("collect", "landscape", "mip", "end_to_end")


def shape(num_tasks: int) -> tuple[int, int]:
  """The planted shape measured at ``num_tasks`` tasks (a UserError for a size without one)."""
  if num_tasks not in SHAPES:
    raise UserError(f"no planted shape for {num_tasks} tasks; --scaling_tasks takes "
                    f"{', '.join(map(str, SHAPES))}")
  return SHAPES[num_tasks]


def check_measures(names) -> tuple[str, ...]:
  """The scaling measures asked for, each known (a UserError naming an unknown one)."""
  unknown = [n for n in names if n not in MEASURES]
  if unknown:
    raise UserError(f"unknown scaling measure(s) {unknown}; known: {', '.join(MEASURES)}")
  return tuple(names)


def collection_figures(num_tasks: int, sample_tasks: int, rounds: int) -> dict[str, float]:
  """Step time and compiled memory of training and of each kind of collection step."""
  clusters, per = shape(num_tasks)
  ts = synthetic.synthetic(clusters, per)
  m = ts.num_tasks
  state = train.init_state(ts, jax.random.key(0))
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  update_fn = jax.jit(train.make_update_fn(ts))
  ones = jnp.ones(m)
  for _ in range(3):  # a momentum state that is not all zeros
    state, _ = update_fn(state, next(batches), ones)
  batch = jax.device_put(next(batches))
  args = {}
  fns = {}

  def add(name: str, fn: Callable, *fn_args):
    compiled = jax.jit(fn).lower(*fn_args).compile()
    args[name] = device_bytes(compiled)
    fns[name] = lambda: compiled(*fn_args)

  add("train_step", train.make_update_fn(ts), state, batch, ones)
  kinds = {"exact": (("principled",), None, "uniform"),
           "sampled": (("principled",), min(sample_tasks, m), "pairs"),
           "first_order": (("first_order",), None, "uniform")}
  for kind, (measures, s, bias) in kinds.items():
    step = lookahead.make_collect_step(ts, measures, sample_tasks=s, sample_bias=bias)
    cstate = lookahead.init_collector(jax.random.key(1), m, measures)
    add(f"collect_{kind}", step, cstate, state.params, state.opt_state, batch)
  ms = bench_timing.time_interleaved(fns, rounds=rounds)
  out = {}
  for name in fns:
    out[f"{name}_ms[{num_tasks}]"] = ms[name]
    out[f"{name}_bytes[{num_tasks}]"] = args[name]
  out[f"collect_exact_over_train_bytes[{num_tasks}]"] = (args["collect_exact"]
                                                         / args["train_step"])
  return out


def landscape_figures(num_tasks: int, rounds: int) -> dict[str, float]:
  """One landscape dissimilarity pass over 256 samples (jitted, timed after compiling)."""
  clusters, per = shape(num_tasks)
  ts = synthetic.synthetic(clusters, per)
  params = landscape_measure.same_heads(ts.init_params(jax.random.key(0)))
  batch = jax.device_put(next(ts.train.eval_batches(256)))
  shared = landscape_measure.identical_heads(ts, params)
  run = lambda: landscape_measure._jitted(ts, params, batch, "fast", shared_head=shared)
  ms = bench_timing.time_interleaved({"landscape": run}, rounds=rounds)
  return {f"landscape_ms[{num_tasks}]": ms["landscape"]}


def mip_figures(num_tasks: int, noise: float, time_limit_s: float | None) -> dict[str, float]:
  """Solve time and certified gap of grouping a planted gains matrix."""
  clusters, per = shape(num_tasks)
  gains = planted_gains(clusters, per, noise=noise, seed=0)
  tasks = [f"t{i}" for i in range(num_tasks)]
  start = time.perf_counter()
  found = solve_grouping(tasks, gains, "principled",
                         Constraints(num_groups=max(2, clusters)), time_limit_s=time_limit_s)
  seconds = time.perf_counter() - start
  gap = found.gap if found.gap is not None else math.nan
  return {f"mip_s[{num_tasks}]": seconds, f"mip_gap[{num_tasks}]": gap,
          f"mip_optimal[{num_tasks}]": float(found.status == "optimal")}


def end_to_end_figures(num_tasks: int, sample_tasks: int, exact_max_tasks: int,
                       run_method: Callable[..., dict]) -> dict[str, float]:
  """Data → groups, cold and cached, for landscape and principled at one size.

  ``run_method(method, clusters, per, cached, sample_tasks)`` times one method in
  fresh processes (``launch.bench``'s subprocess runner) and returns
  ``{"cold": s, "cached": s}``.
  """
  clusters, per = shape(num_tasks)
  out = {}
  land = run_method("landscape", clusters, per, None)
  out[f"landscape_to_groups_s[{num_tasks}]"] = land["cold"]
  out[f"landscape_to_groups_cached_s[{num_tasks}]"] = land["cached"]
  variants = {"principled_sampled": min(sample_tasks, num_tasks)}
  if num_tasks <= exact_max_tasks:
    variants["principled"] = None
  for name, s in variants.items():
    got = run_method("principled", clusters, per, s)
    out[f"{name}_to_groups_s[{num_tasks}]"] = got["cold"]
    out[f"{name}_to_groups_cached_s[{num_tasks}]"] = got["cached"]
    suffix = "" if name == "principled" else "_sampled"
    out[f"end_to_end_speedup{suffix}[{num_tasks}]"] = got["cold"] / land["cold"]
    out[f"end_to_end_speedup{suffix}_cached[{num_tasks}]"] = got["cached"] / land["cached"]
  return out


def curves(figures: dict[str, float]) -> dict[str, dict[int, float]]:
  """``{"name[m]": v}`` → ``{"name": {m: v}}``, sizes ascending.

  Examples:
    >>> curves({"mip_s[40]": 1.0, "mip_s[9]": 0.1, "other": 3.0})
    {'mip_s': {9: 0.1, 40: 1.0}}
  """
  out: dict[str, dict[int, float]] = {}
  for key, value in figures.items():
    if key.endswith("]") and "[" in key:
      name, m = key[:-1].split("[")
      out.setdefault(name, {})[int(m)] = value
  return {name: dict(sorted(points.items())) for name, points in out.items()}


def plot(figures: dict[str, float], path: str, device: str) -> None:
  """The curves on log axes, four panels: collection time, memory, MIP, data → groups."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  c = curves(figures)
  panels = [
      ("one step (ms)", ["train_step_ms", "collect_exact_ms", "collect_sampled_ms",
                         "collect_first_order_ms", "landscape_ms"]),
      ("compiled memory of one step (bytes)", ["train_step_bytes", "collect_exact_bytes",
                                               "collect_sampled_bytes",
                                               "collect_first_order_bytes"]),
      ("grouping MIP (s, and relative gap)", ["mip_s", "mip_gap"]),
      ("data → groups (s), cold", ["landscape_to_groups_s", "principled_to_groups_s",
                                   "principled_sampled_to_groups_s", "end_to_end_speedup",
                                   "end_to_end_speedup_sampled"]),
  ]
  fig, axes = plt.subplots(2, 2, figsize=(11, 8))
  for ax, (title, names) in zip(axes.ravel(), panels):
    for name in names:
      points = {m: v for m, v in c.get(name, {}).items() if v > 0 and math.isfinite(v)}
      if points:
        ax.plot(list(points), list(points.values()), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=7)
    else:
      ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center",
              transform=ax.transAxes)
  fig.suptitle(f"tgroup scaling on {device}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def scaling_figures(sizes, measures, *, rounds: int, sample_tasks: int, exact_max_tasks: int,
                    mip_noise: float, mip_time_limit_s: float | None,
                    run_method: Callable[..., dict], log: Callable[[str], None] = print
                    ) -> dict[str, float]:
  """Every requested measure at every size (progress through ``log``)."""
  figures: dict[str, float] = {}
  for m in sizes:
    shape(m)
  for m in sizes:
    if "collect" in measures:
      log(f"scaling: collection steps at {m} tasks")
      figures.update(collection_figures(m, sample_tasks, rounds))
    if "landscape" in measures:
      log(f"scaling: landscape pass at {m} tasks")
      figures.update(landscape_figures(m, rounds))
    if "mip" in measures:
      log(f"scaling: grouping MIP at {m} tasks")
      figures.update(mip_figures(m, mip_noise, mip_time_limit_s))
    if "end_to_end" in measures:
      log(f"scaling: data to groups at {m} tasks")
      figures.update(end_to_end_figures(m, sample_tasks, exact_max_tasks, run_method))
  return figures
