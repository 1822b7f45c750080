"""The landscape method (Thakur et al. 2024): groups without training anything.

Per-sample one-step optima at an initialisation θ_0 give a task dissimilarity
(:mod:`tgroup.landscape.measure`), a graph attention network embeds the task
graph and a Gaussian mixture clusters the embeddings
(:mod:`tgroup.landscape.cluster`): a partition. A mixture can honour only the
number of groups (exact or at most), no other constraint and no budget.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import time
from typing import Any

import numpy as np

from tgroup import io
from tgroup import mesh as mesh_lib
from tgroup.errors import UserError
from tgroup.gains.gains import Gains
from tgroup.grouping import Grouping
from tgroup.methods.method import Context, Method, Outcome

HEAD_INITS = ("same", "independent")


@dataclasses.dataclass(frozen=True)
class LandscapeConfig:
  """Settings of the landscape method.

  Attributes:
    samples: shared training samples the dissimilarity averages over.
    inits: random initialisations θ_0 it averages (seeds seed, seed+1, ...).
    knn: sparsify the task graph to each task's k nearest neighbours (None: dense).
    head_init: ``same`` (every head of θ_0 a copy of one, see
      :func:`tgroup.landscape.same_heads`) or ``independent``.
    warmup_steps: 0 (the paper's form): θ_0 is a random initialisation, where
      the dissimilarity is a statistic of the labels (docs/design.md §2.6).
      Above 0: θ_0 is the all-task network after this many training steps
      (the run's optimizer, batches and seed), which carries the model; then
      ``inits`` and ``head_init`` do not apply.
    params: θ_0 given: parameters of the TaskSet's model (a checkpoint of your
      own, e.g. a pretrained network), measured as they are; then
      ``warmup_steps``, ``inits`` and ``head_init`` do not apply. None: as above.
      report.json records only whether they were given.
  """
  samples: int = 256
  inits: int = 1
  knn: int | None = None
  head_init: str = "same"
  warmup_steps: int = 0
  params: Any = None

  def to_json(self) -> dict:
    """The settings for report.json (given parameters are recorded as given, not written)."""
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "params"}
    return {**out, "params": None if self.params is None else "given"}


def _check(config, taskset) -> None:
  c = config.landscape
  if c.head_init not in HEAD_INITS:
    raise UserError(f"landscape head_init (--landscape_head_init) must be same or independent, "
                    f"got {c.head_init!r}")
  for name, value in (("samples", c.samples), ("inits", c.inits)):
    if value < 1:
      raise UserError(f"landscape {name} (--landscape_{name}) must be >= 1, got {value}")
  if c.warmup_steps < 0:
    raise UserError(f"landscape warmup_steps (--landscape_warmup_steps) must be >= 0, "
                    f"got {c.warmup_steps}")
  if c.params is not None:
    _check_params(c.params, taskset)
  if c.knn is not None and not 1 <= c.knn < taskset.num_tasks:
    raise UserError(f"landscape knn (--landscape_knn) must be between 1 and "
                    f"{taskset.num_tasks - 1}, got {c.knn}")


def dissimilarity(context: Context) -> np.ndarray:
  """The run's ``(m, m)`` landscape dissimilarity, with its settings (``config.landscape``)."""
  from tgroup.landscape import measure  # pylint: disable=g-import-not-at-top
  ts, config = context.taskset, context.config
  settings, seed = config.landscape, config.collect.seed
  mesh = mesh_lib.stage_mesh(config.mesh, "landscape", batch_size=ts.batch_size)
  theta0 = settings.params
  if theta0 is None and settings.warmup_steps:
    # The all-task network after a few steps: a θ_0 that carries the model.
    from tgroup import train  # pylint: disable=g-import-not-at-top
    theta0 = train.all_task_params(ts, settings.warmup_steps, seed)
  return measure.landscape_dissimilarity(
      ts, num_samples=settings.samples, init_seeds=tuple(range(seed, seed + settings.inits)),
      params=theta0, batch_size=ts.batch_size, head_init=settings.head_init, mesh=mesh)


def _check_params(params, taskset) -> None:
  """A one-line UserError unless ``params`` have the structure and shapes of the model's."""
  import jax  # pylint: disable=g-import-not-at-top
  expected = jax.eval_shape(lambda: taskset.init_params(jax.random.key(0)))
  shapes = lambda tree: jax.tree_util.tree_map(lambda x: tuple(getattr(x, "shape", ())), tree)
  try:
    same = shapes(params) == shapes(expected)
  except (TypeError, ValueError):
    same = False
  if not same:
    raise UserError("landscape params (LandscapeConfig.params) must be parameters of the "
                    "TaskSet's model, with the structure and shapes its init_params gives")


def _group(method: Method, context: Context) -> Outcome:
  import jax  # pylint: disable=g-import-not-at-top
  from tgroup.landscape import cluster  # pylint: disable=g-import-not-at-top
  # Imported before the clock starts, as mip is for the other methods (with
  # tgroup.grouping): importing scikit-learn took ≈ 1.15 s, longer than the grouping.
  importlib.import_module("sklearn.mixture")
  ts, config = context.taskset, context.config
  settings, seed = config.landscape, config.collect.seed
  start = time.perf_counter()
  d = dissimilarity(context)
  collect_s = time.perf_counter() - start
  start = time.perf_counter()
  c = config.constraints
  out = cluster.landscape_groups(d, ts.tasks, jax.random.key(seed), num_groups=c.num_groups,
                                 knn=settings.knn, max_groups=c.max_groups)
  group_s = time.perf_counter() - start
  report = {}
  ratio = within_across_ratio(d, ts.tasks, ts.ground_truth_groups)
  if ratio is not None:
    out["within_across_ratio"] = report["within_across_ratio"] = ratio
  m = ts.num_tasks
  gains = Gains(ts.tasks, "landscape_dissimilarity", d, np.full((m, m), settings.samples),
                {"samples": settings.samples, "inits": settings.inits,
                 "head_init": settings.head_init, "warmup_steps": settings.warmup_steps,
                 "params": settings.to_json()["params"],
                 "seconds": collect_s,
                 "note": "a dissimilarity (lower = the tasks train well together), not a gain"})
  gains.save(os.path.join(context.workdir, "gains_landscape_dissimilarity.json"))
  io.write_json(os.path.join(context.workdir, "landscape.json"), out)
  groups = tuple(tuple(g) for g in out["groups"])
  grouping = Grouping(tasks=ts.tasks, groups=groups,
                      assignment={t: k for k, g in enumerate(groups) for t in g},
                      objective=float(out["gat_loss"]), status="feasible", candidates="all",
                      objective_name="landscape_gat_reconstruction_loss",
                      constraints=c.to_json())
  return Outcome(draws=(grouping.indices(),), grouping=grouping, gains=gains,
                 seconds={"collect": collect_s, "group": group_s}, report=report,
                 networks=1 if settings.params is None and settings.warmup_steps else 0)


def within_across_ratio(d: np.ndarray, tasks, ground_truth) -> float | None:
  """Mean dissimilarity within planted groups over the mean across them: is there signal?

  None without planted groups, or when either side has no pair.

  Examples:
    >>> d = np.array([[0, 1, 4], [1, 0, 4], [4, 4, 0]], float)
    >>> within_across_ratio(d, ("a", "b", "c"), (("a", "b"), ("c",)))
    0.25
  """
  if ground_truth is None:
    return None
  label = {t: k for k, g in enumerate(ground_truth) for t in g}
  same = np.array([[label[a] == label[b] for b in tasks] for a in tasks])
  off = ~np.eye(len(tasks), dtype=bool)
  if not (same & off).any() or not (~same).any():
    return None
  return float(d[same & off].mean() / d[~same].mean())


LANDSCAPE = Method(
    name="landscape",
    summary="training-free: per-sample one-step optima at θ_0 → task graph → graph attention "
    "network → Gaussian mixture; partition",
    group=_group, constraints=("num_groups", "max_groups"), budgets=False, check=_check)
