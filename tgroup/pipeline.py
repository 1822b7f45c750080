"""The whole pipeline for any TaskSet: collect → group → evaluate → report (DESIGN §1, §6).

Launchers only turn flags into a TaskSet and a :class:`PipelineConfig` and call
:func:`run_pipeline`; users call it from Python or a notebook.

Files written into ``workdir`` (atomically):
  gains.json, gains_<measure>.json   the gains of the first / every gain method
  gains_history.json                 every collected measure's running means at ~20 steps,
                                     their rank correlation with the final gains and the
                                     step from which it stays >= 0.9 ("stable_step")
  landscape.json                     the landscape method's graph, embeddings and groups
  groups.json, groups_<method>.json  the grouping of the first / every grouping method
  networks/<identity>/*.json         every trained network's results, as it finishes
  checkpoints/collect/<key>/         the collection run's checkpoint while it runs (resumed
                                     by a rerun; deleted once the gains are saved)
  oracle/table.json                  the oracle's measured table (with ``oracle``)
  report.json                        every method's groups, results and regret
  gains.png, results.png             heatmap with groups outlined; per-task bars
  gains_over_time.png                how early the first gain measure's ranking settles
  frontier.json, frontier.png        with a budget sweep: the best grouping at each budget,
                                     its predicted score and real test total
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
from typing import Any, Mapping, Sequence

from absl import logging
import numpy as np

from tgroup import baselines
from tgroup import checkpoint
from tgroup import evaluate
from tgroup import io
from tgroup import methods as methods_lib
from tgroup import oracle
from tgroup import plots
from tgroup import report as report_lib
from tgroup.errors import InfeasibleError, UserError
from tgroup.gains import CollectConfig, Gains, run_collection
from tgroup.gains import history as history_lib
from tgroup.gains.collect import clear_checkpoint
from tgroup.grouping import Constraints, Grouping, hoa_gains, solve_grouping, solve_measured
from tgroup.grouping import frontier as frontier_lib
from tgroup.grouping.budget import Budget, check_cost_model, file_costs
from tgroup.netcache import MemoryCache, NetworkCache
from tgroup.tasks import TaskSet

METHODS = methods_lib.METHODS
PRINCIPLED_FORMS = methods_lib.PRINCIPLED_FORMS
format_table = report_lib.format_table


@dataclasses.dataclass(frozen=True)
class Resources:
  """Network costs and the limits on them (resource-aware grouping).

  Attributes:
    cost_model: what a network's cost counts, measured by XLA on the compiled
      forward pass (:mod:`tgroup.costs`): ``flops``, ``memory``, ``params`` or
      ``uniform`` (1 per network). Ignored with ``costs_file``.
    budget: the chosen networks' costs sum to at most this (every grouping
      method that can honour it, the oracle included); None: no total.
    max_network_cost: every chosen network costs at most this; None: no cap.
    allow_half_size: half-size single-task networks (the trunk's widths
      halved, :func:`tgroup.costs.half_width`) as extra candidates; a chosen one
      is trained as such, with its own cache entry.
    costs_file: user-given costs (:func:`tgroup.costs.costs_from_json`)
      instead of measured ones.
    budget_sweep: solve the first grouping method at this many budgets, from
      the cheapest feasible to the unconstrained optimum, train every point's
      groups and write ``frontier.json`` and ``frontier.png``; 0: no sweep.
    cost_batch_size: batch of the measured forward pass (None: the TaskSet's).
  """
  cost_model: str = "params"
  budget: float | None = None
  max_network_cost: float | None = None
  allow_half_size: bool = False
  costs_file: str | None = None
  budget_sweep: int = 0
  cost_batch_size: int | None = None

  @property
  def limits(self) -> bool:
    """Whether any limit applies to the groupings themselves."""
    return self.budget is not None or self.max_network_cost is not None or self.allow_half_size

  @property
  def active(self) -> bool:
    return self.limits or self.budget_sweep > 0

  def validate(self, methods: Sequence[str]) -> None:
    check_cost_model(self.cost_model)
    if self.budget_sweep < 0 or self.budget_sweep == 1:
      raise UserError(f"budget_sweep must be 0 (none) or >= 2 budgets, got {self.budget_sweep}")
    if self.cost_batch_size is not None and self.cost_batch_size < 1:
      raise UserError(f"cost_batch_size must be >= 1, got {self.cost_batch_size}")
    if self.limits and "landscape" in methods:
      raise UserError("landscape groups by Gaussian-mixture clustering, which cannot honour a "
                      "budget or max_network_cost")
    if self.budget_sweep and not any(m in methods_lib.GAIN_METHODS or m == "hoa"
                                     for m in methods):
      raise UserError("budget_sweep sweeps the first gain method (principled, tag, cosine, "
                      "first_order or hoa); none is in methods")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Settings of one pipeline run.

  Attributes:
    methods: among :data:`METHODS`; the first grouping method fills groups.json.
    constraints: grouping constraints (all grouping methods).
    principled_form: ``self_pair`` (the paper's; needs ``constraints.num_groups``
      or ``max_groups`` since it always prefers singletons when free) or
      ``marginal`` (a natural zero, so the MIP may choose how many groups).
    collect: collection settings; its measures are set from ``methods``.
    eval_seeds: seeds of the group networks; results are averaged over them.
    train_steps: steps of every group network (None: the TaskSet's default).
    chunk_size: networks trained at once (results do not depend on the others in
      a chunk, but do on its size: keep it fixed when comparing runs).
    random_draws: random partitions drawn for ``random``.
    max_oracle_networks: refuse the oracle when 2^m − 1 exceeds this.
    landscape_samples: shared training samples of the landscape dissimilarity.
    landscape_inits: random initialisations θ_0 it averages (seeds seed, seed+1, ...).
    landscape_knn: sparsify the landscape task graph to k nearest neighbours.
    landscape_head_init: ``same`` (every head of θ_0 a copy of one) or
      ``independent`` (see :func:`tgroup.landscape.measure.same_heads`).
    quiet: no progress lines and no table.
    run_key: settings that identify the problem (e.g. the launcher's benchmark
      flags). With it, saved gains and networks in ``workdir`` are reused when it
      and every other setting match, and an interrupted collection run resumes
      from its checkpoint (``collect.checkpoint_every``); without it nothing is
      reused.
    resources: network costs, budgets and the budget sweep (:class:`Resources`).
  """
  methods: tuple[str, ...] = ("principled", "tag", "stl", "mtl_all")
  constraints: Constraints = Constraints()
  principled_form: str = "self_pair"
  collect: CollectConfig = CollectConfig()
  eval_seeds: tuple[int, ...] = (0,)
  train_steps: int | None = None
  chunk_size: int = 16
  random_draws: int = 5
  max_oracle_networks: int = 1023
  landscape_samples: int = 256
  landscape_inits: int = 1
  landscape_knn: int | None = None
  landscape_head_init: str = "same"
  quiet: bool = False
  run_key: dict[str, Any] | None = None
  resources: Resources = Resources()

  def validate(self, taskset: TaskSet) -> None:
    """Fails fast, before any training, on every setting a user can get wrong."""
    unknown = [m for m in self.methods if m not in METHODS]
    if not self.methods or unknown:
      raise UserError(f"unknown method(s) {unknown}; available: {', '.join(METHODS)}")
    if len(set(self.methods)) != len(self.methods):
      raise UserError(f"methods repeat: {list(self.methods)}")
    if self.principled_form not in PRINCIPLED_FORMS:
      raise UserError(f"principled_form must be one of {list(PRINCIPLED_FORMS)}, "
                      f"got {self.principled_form!r}")
    c = self.constraints
    c.check_tasks(taskset.tasks)
    free = c.num_groups is None and c.max_groups is None
    for method in self.methods:
      if method == "random" and c.num_groups is None and not self.grouping_methods():
        raise UserError("random groupings need num_groups, or a grouping method whose group "
                        "count they copy")
      if method != "random" and free and methods_lib.needs_group_count(method,
                                                                      self.principled_form):
        raise UserError(f"{method} with self-pair gains needs num_groups or max_groups (with "
                        "the number of groups free it always picks singletons); set one"
                        + (", or use principled_form=marginal" if method == "principled"
                           else ""))
    if any(m in self.methods for m in methods_lib.TABLE_METHODS) and taskset.val is None:
      raise UserError("hoa and oracle select on validation results, but the TaskSet has no "
                      "validation split")
    if "oracle" in self.methods and 2 ** taskset.num_tasks - 1 > self.max_oracle_networks:
      raise UserError(f"the oracle would train 2^{taskset.num_tasks} - 1 = "
                      f"{2 ** taskset.num_tasks - 1} networks, more than max_oracle_networks="
                      f"{self.max_oracle_networks}")
    if "landscape" in self.methods:
      unsupported = [n for n in c.active() if n not in methods_lib.LANDSCAPE_CONSTRAINTS]
      if unsupported:
        raise UserError("landscape groups by Gaussian-mixture clustering, which can honour only "
                        f"num_groups and max_groups, not {', '.join(unsupported)}")
      if self.landscape_head_init not in ("same", "independent"):
        raise UserError("landscape_head_init must be same or independent, got "
                        f"{self.landscape_head_init!r}")
      if self.landscape_knn is not None and not 1 <= self.landscape_knn < taskset.num_tasks:
        raise UserError(f"landscape_knn must be between 1 and {taskset.num_tasks - 1}, "
                        f"got {self.landscape_knn}")
    for name, value, low in (("eval_seeds", len(self.eval_seeds), 1),
                             ("chunk_size", self.chunk_size, 1),
                             ("landscape_samples", self.landscape_samples, 1),
                             ("landscape_inits", self.landscape_inits, 1),
                             ("random_draws", self.random_draws, 1),
                             ("train_steps", self.train_steps or 1, 1)):
      if value < low:
        raise UserError(f"{name} must be >= {low}, got {value}")
    self.resources.validate(self.methods)
    self.collect_config().validate(taskset.num_tasks)
    self.check_feasible(taskset)

  def check_feasible(self, taskset: TaskSet, budget: Budget | None = None) -> None:
    """Infeasible constraints (and budget limits) fail now, not after the collection
    run: the same model with zero gains is feasible exactly when the real one is."""
    zeros = np.zeros((taskset.num_tasks, taskset.num_tasks))
    for method in self.methods:
      if method in methods_lib.GAIN_METHODS or method == "hoa":
        objective, overlap = self.objective_of(method)
        solve_grouping(list(taskset.tasks), zeros, objective, self.constraints,
                       overlap=overlap, budget=budget)

  def objective_of(self, method: str) -> tuple[str, bool]:
    """(grouping objective, overlap) of a gain method or hoa."""
    if method == "hoa":
      return "hoa", True
    spec = methods_lib.gain_spec(method, self.principled_form)
    return spec.objective, spec.overlap

  def grouping_methods(self) -> list[str]:
    return [m for m in self.methods if m in methods_lib.GAIN_METHODS + methods_lib.TABLE_METHODS
            + methods_lib.TRAINING_FREE]

  def collect_config(self) -> CollectConfig:
    measures = tuple(dict.fromkeys(
        methods_lib.gain_spec(m, self.principled_form).measure
        for m in self.methods if m in methods_lib.GAIN_METHODS))
    return dataclasses.replace(self.collect, measures=measures or ("principled",))


def run_pipeline(taskset: TaskSet, config: PipelineConfig, workdir: str) -> dict:
  """Collects gains, groups, trains every method's networks and writes the contract.

  Returns the report (also written to ``workdir/report.json``).

  Examples:
    >>> import tempfile
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=128, num_val=32, num_test=32, batch_size=32,
    ...                train_steps=5)
    >>> cfg = PipelineConfig(constraints=Constraints(num_groups=2), quiet=True)
    >>> report = run_pipeline(ts, cfg, tempfile.mkdtemp())
    >>> sorted(report["methods"])
    ['mtl_all', 'principled', 'stl', 'tag']
  """
  config.validate(taskset)
  budget = _budget(taskset, config.resources)
  if budget is not None and budget.active():
    config.check_feasible(taskset, budget)  # budget limits too fail before any training
  os.makedirs(workdir, exist_ok=True)
  m = taskset.num_tasks
  cache = (NetworkCache(os.path.join(workdir, "networks"), _network_identity(taskset, config))
           if config.run_key is not None else MemoryCache())

  def train(groups):
    return evaluate.train_groups(taskset, groups, seeds=config.eval_seeds,
                                 steps=config.train_steps, chunk_size=config.chunk_size,
                                 quiet=config.quiet, cache=cache)

  half = _HalfSize(taskset, config, workdir) if config.resources.allow_half_size else None

  gain_methods = [x for x in config.methods if x in methods_lib.GAIN_METHODS]
  gains, collect_seconds = ({}, 0.0)
  if gain_methods:
    gains, collect_seconds, histories = _collect_or_reuse(taskset, config, workdir)
    _plot_history(taskset, config, workdir, histories)
  seconds = {x: {"collect": collect_seconds, "group": 0.0} for x in gain_methods}
  groupings: dict[str, Grouping] = {}
  for method in gain_methods:
    measure = methods_lib.gain_spec(method, config.principled_form).measure
    groupings[method], seconds[method]["group"] = _timed_grouping(
        taskset, config, method, gains[measure].gains, budget)

  if "hoa" in config.methods:
    pairs = train([(i,) for i in range(m)] + [(i, j) for i in range(m) for j in range(i + 1, m)])
    gains["hoa"] = Gains(taskset.tasks, "hoa", hoa_gains(_pair_table(pairs, m)),
                         np.ones((m, m), int), {"table": "validation loss of pairs and singles"})
    gains["hoa"].save(os.path.join(workdir, "gains_hoa.json"))
    groupings["hoa"], group_s = _timed_grouping(taskset, config, "hoa", gains["hoa"].gains,
                                                budget)
    seconds["hoa"] = {"collect": sum(r.seconds for r in pairs.values()), "group": group_s}

  table = None
  if "oracle" in config.methods:
    table = train(oracle.all_subsets(m))
    _save_table(taskset, table, os.path.join(workdir, "oracle", "table.json"))
    start = time.perf_counter()
    groupings["oracle"] = solve_measured(taskset.tasks, _val_losses(table), config.constraints,
                                         budget=_limits_only(budget))
    seconds["oracle"] = {"collect": sum(r.seconds for r in table.values()),
                         "group": time.perf_counter() - start}

  landscape_out = {}
  if "landscape" in config.methods:
    groupings["landscape"], gains["landscape"], seconds["landscape"], landscape_out = _landscape(
        taskset, config, workdir)

  _write_groupings(taskset, config, workdir, gains, groupings)

  draws = {x: [_indices(taskset, groupings[x])] for x in groupings}
  draws["stl"] = [([(i,) for i in range(m)], None)]
  draws["mtl_all"] = [([tuple(range(m))], None)]
  if "random" in config.methods:
    k = config.constraints.num_groups or len(groupings[config.grouping_methods()[0]].groups)
    draws["random"] = [(p, None) for p in baselines.random_partitions(
        taskset.tasks, k, config.random_draws, config.collect.seed, config.constraints)]
  needed = [g for x in config.methods for gs, _ in draws[x] for g in gs] + draws["stl"][0][0]
  results = train(needed)
  if table is not None:
    results = {**table, **results}

  stl_metric = [results[(i,)].test_metric[i] for i in range(m)]
  report = {"benchmark": taskset.name, "description": taskset.description,
            "tasks": list(taskset.tasks), "metric": taskset.metric_name,
            "settings": _settings(taskset, config), "methods": {}}
  if taskset.ground_truth_groups is not None:
    report["ground_truth_groups"] = [list(g) for g in taskset.ground_truth_groups]
  regret = (_Regret(taskset, config, table, results, _limits_only(budget))
            if table is not None else None)
  for method in config.methods:
    own = results
    if half is not None and method in groupings:
      own = half.results(groupings[method], results)
    entry = report_lib.method_entry(taskset, draws[method], own, stl_metric)
    if method in groupings and groupings[method].half_size is not None:
      entry["half_size"] = list(groupings[method].half_size)
      entry["network_costs"] = list(groupings[method].network_costs)
    entry["seconds"].update(seconds.get(method, {}))
    if method in groupings:
      entry["grouping_status"] = groupings[method].status
      entry["predicted_objective"] = groupings[method].objective
    if method in gain_methods:
      entry["measure"] = methods_lib.gain_spec(method, config.principled_form).measure
    elif method in ("hoa", "landscape"):
      entry["measure"] = gains[method].measure
    if method == "landscape" and "within_across_ratio" in landscape_out:
      entry["within_across_ratio"] = landscape_out["within_across_ratio"]
    if regret is not None:
      entry["regret"] = regret(entry["total_test_loss"], len(draws[method][0][0]),
                               methods_lib.OVERLAP.get(method, False))
    if taskset.ground_truth_groups is not None:
      entry["matches_ground_truth"] = _same_partition(entry["groups"],
                                                      report["ground_truth_groups"])
      entry["adjusted_rand_index"] = _ari(taskset, draws[method][0])
    report["methods"][method] = entry
  if "first_order" in gains and "principled" in gains:
    report["methods"]["first_order"]["spearman_with_principled"] = baselines.spearman(
        gains["first_order"].gains.ravel(), gains["principled"].gains.ravel())
  if config.resources.budget_sweep:
    report["frontier"] = _frontier(taskset, config, workdir, gains, budget, train, report, half)
  io.write_json(os.path.join(workdir, "report.json"), report)
  plots.per_task_bars(report, os.path.join(workdir, "results.png"))
  if not config.quiet:
    print(format_table(report))
  return report


class _Regret:
  """Test total minus the oracle's at the same number of groups (and overlap).

  The oracle's grouping with k groups is selected on the validation table under
  the run's other constraints, and scored on test like every method.
  """

  def __init__(self, taskset, config, table, results, budget=None):
    self.taskset, self.config, self.results, self.budget = taskset, config, results, budget
    self.val = _val_losses(table)
    self.totals: dict[tuple[int, bool], float | None] = {}

  def __call__(self, total: float, k: int, overlap: bool) -> float | None:
    if (k, overlap) not in self.totals:
      constraints = dataclasses.replace(self.config.constraints, num_groups=k, max_groups=None)
      try:
        best = solve_measured(self.taskset.tasks, self.val, constraints, overlap=overlap,
                              budget=self.budget)
      except InfeasibleError:
        self.totals[(k, overlap)] = None
      else:
        groups, assignment = _indices(self.taskset, best)
        self.totals[(k, overlap)] = evaluate.score_grouping(
            self.taskset, groups, assignment, self.results)["total_test_loss"]
    best_total = self.totals[(k, overlap)]
    return None if best_total is None else float(total - best_total)


def _landscape(taskset: TaskSet, config: PipelineConfig, workdir: str
               ) -> tuple[Grouping, Gains, dict, dict]:
  """The training-free method: dissimilarity → task graph → GAT → Gaussian mixture."""
  import jax  # pylint: disable=g-import-not-at-top
  from tgroup.landscape import cluster, measure  # pylint: disable=g-import-not-at-top
  # Imported before the clock starts, as mip is for the other methods (with
  # tgroup.grouping): importing scikit-learn took ≈ 1.15 s, longer than the grouping.
  importlib.import_module("sklearn.mixture")
  seed = config.collect.seed
  start = time.perf_counter()
  d = measure.landscape_dissimilarity(
      taskset, num_samples=config.landscape_samples,
      init_seeds=tuple(range(seed, seed + config.landscape_inits)),
      batch_size=taskset.batch_size, head_init=config.landscape_head_init)
  collect_s = time.perf_counter() - start
  start = time.perf_counter()
  c = config.constraints
  out = cluster.landscape_groups(d, taskset.tasks, jax.random.key(seed), num_groups=c.num_groups,
                                 knn=config.landscape_knn, max_groups=c.max_groups)
  group_s = time.perf_counter() - start
  m = taskset.num_tasks
  if taskset.ground_truth_groups is not None:
    # Is there signal at all? Mean dissimilarity within planted groups over across them.
    label = {t: k for k, g in enumerate(taskset.ground_truth_groups) for t in g}
    same = np.array([[label[a] == label[b] for b in taskset.tasks] for a in taskset.tasks])
    off = ~np.eye(m, dtype=bool)
    if (same & off).any() and (~same).any():
      out["within_across_ratio"] = float(d[same & off].mean() / d[~same].mean())
  gains = Gains(taskset.tasks, "landscape_dissimilarity", d,
                np.full((m, m), config.landscape_samples),
                {"samples": config.landscape_samples, "inits": config.landscape_inits,
                 "head_init": config.landscape_head_init, "seconds": collect_s,
                 "note": "a dissimilarity (lower = the tasks train well together), not a gain"})
  gains.save(os.path.join(workdir, "gains_landscape_dissimilarity.json"))
  io.write_json(os.path.join(workdir, "landscape.json"), out)
  groups = [list(g) for g in out["groups"]]
  grouping = Grouping(tasks=taskset.tasks, groups=tuple(tuple(g) for g in groups),
                      assignment={t: k for k, g in enumerate(groups) for t in g},
                      objective=float(out["gat_loss"]), status="feasible", candidates="all",
                      objective_name="landscape_gat_reconstruction_loss",
                      constraints=c.to_json())
  return grouping, gains, {"collect": collect_s, "group": group_s}, out


def _ari(taskset: TaskSet, draw) -> float:
  """Adjusted Rand index of a grouping's serving labels against the ground truth."""
  from sklearn.metrics import adjusted_rand_score  # pylint: disable=g-import-not-at-top
  groups, assignment = draw
  index = {t: i for i, t in enumerate(taskset.tasks)}
  truth = np.zeros(taskset.num_tasks, int)
  for k, g in enumerate(taskset.ground_truth_groups):
    truth[[index[t] for t in g]] = k
  labels = np.zeros(taskset.num_tasks, int)
  for t in range(taskset.num_tasks):
    labels[t] = assignment[t] if assignment is not None else next(
        k for k, g in enumerate(groups) if t in g)
  return float(adjusted_rand_score(truth, labels))


def _timed_grouping(taskset, config, method, gains, budget=None) -> tuple[Grouping, float]:
  objective, overlap = config.objective_of(method)
  start = time.perf_counter()
  grouping = solve_grouping(list(taskset.tasks), gains, objective, config.constraints,
                            overlap=overlap, budget=_limits_only(budget))
  return grouping, time.perf_counter() - start


class _HalfSize:
  """Trains the half-size single-task networks a grouping chose (trunk widths halved).

  They are the TaskSet's model with a half-width trunk, trained like every
  network, cached under their own identity (so never confused with the
  full-size network of the same task).
  """

  def __init__(self, taskset: TaskSet, config: PipelineConfig, workdir: str):
    from tgroup import costs as costs_lib  # pylint: disable=g-import-not-at-top
    self.taskset = dataclasses.replace(
        taskset, model=costs_lib.network_model(taskset, taskset.num_tasks, half_size=True))
    self.config = config
    identity = dict(_network_identity(taskset, config), half_size=True)
    self.cache = (NetworkCache(os.path.join(workdir, "networks"), identity)
                  if config.run_key is not None else MemoryCache())

  def results(self, grouping: Grouping, results: Mapping) -> dict:
    """``results`` with each half-size group of ``grouping`` replaced by its network's."""
    if grouping.half_size is None or not any(grouping.half_size):
      return dict(results)
    index = {t: i for i, t in enumerate(grouping.tasks)}
    groups = [tuple(index[t] for t in g) for g, h in zip(grouping.groups, grouping.half_size)
              if h]
    c = self.config
    trained = evaluate.train_groups(self.taskset, groups, seeds=c.eval_seeds,
                                    steps=c.train_steps, chunk_size=c.chunk_size,
                                    quiet=c.quiet, cache=self.cache)
    return {**results, **trained}


def _budget(taskset: TaskSet, resources: Resources) -> Budget | None:
  """The :class:`Budget` of the run's resources (costs measured once per network size)."""
  if not resources.active:
    return None
  from tgroup import costs as costs_lib  # pylint: disable=g-import-not-at-top
  if resources.costs_file:
    cost = file_costs(resources.costs_file, taskset.tasks)
    model = f"file {os.path.basename(resources.costs_file)}"
  else:
    cost = costs_lib.measured_cost_fn(taskset, resources.cost_model,
                                      batch_size=resources.cost_batch_size or taskset.batch_size)
    model = resources.cost_model
  return Budget(cost=cost, total=resources.budget, max_network_cost=resources.max_network_cost,
                allow_half_size=resources.allow_half_size, cost_model=model)


def _limits_only(budget: Budget | None) -> Budget | None:
  """The budget where it limits the grouping; None when only a sweep asked for costs."""
  return budget if budget is not None and (budget.active() or budget.allow_half_size) else None


def _frontier(taskset, config, workdir, gains, budget, train, report, half=None) -> dict:
  """Solves the first gain method at the sweep's budgets, trains every point's groups,
  writes frontier.json and frontier.png; returns a summary for report.json."""
  method = next(m for m in config.methods if m in methods_lib.GAIN_METHODS or m == "hoa")
  measure = "hoa" if method == "hoa" else methods_lib.gain_spec(
      method, config.principled_form).measure
  objective, overlap = config.objective_of(method)
  # The number of groups is what the budget trades: the sweep leaves it free.
  constraints = dataclasses.replace(config.constraints, num_groups=None)
  points = frontier_lib.budget_frontier(
      list(taskset.tasks), gains[measure].gains, objective, budget,
      config.resources.budget_sweep, constraints, overlap=overlap)
  draws = [_indices(taskset, p.grouping) for p in points]
  results = train(sorted({g for groups, _ in draws for g in groups}))
  totals = {k: evaluate.score_grouping(
      taskset, groups, assignment,
      results if half is None else half.results(p.grouping, results))["total_test_loss"]
             for k, ((groups, assignment), p) in enumerate(zip(draws, points))}
  data = frontier_lib.frontier_json(points, budget.cost_model, totals)
  data["method"], data["constraints"] = method, constraints.to_json()
  m = taskset.num_tasks
  for name, groups in (("stl", [(i,) for i in range(m)]), ("mtl_all", [tuple(range(m))])):
    entry = report["methods"].get(name)
    data[name] = {"cost": float(sum(budget.costs(groups, [False] * len(groups)))),
                  "test_total": None if entry is None else entry["total_test_loss"]}
  io.write_json(os.path.join(workdir, "frontier.json"), data)
  plots.frontier(data, os.path.join(workdir, "frontier.png"), close=True)
  return {"method": method, "cost_model": budget.cost_model, "points": len(points)}


def _indices(taskset: TaskSet, grouping: Grouping):
  if tuple(grouping.tasks) != tuple(taskset.tasks):
    raise ValueError(f"grouping of {grouping.tasks} for a TaskSet of {taskset.tasks}")
  return grouping.indices()


def _pair_table(results, m: int) -> np.ndarray:
  """``table[a][b]``: task a's validation loss trained with b alone (``[a][a]``: alone)."""
  table = np.zeros((m, m))
  for g, r in results.items():
    if len(g) == 1:
      table[g[0], g[0]] = r.val_loss[g[0]]
    else:
      i, j = g
      table[i, j], table[j, i] = r.val_loss[i], r.val_loss[j]
  return table


def _val_losses(table) -> dict:
  return {g: r.val_loss for g, r in table.items()}


def _save_table(taskset: TaskSet, table, path: str) -> None:
  io.write_json(path, {"tasks": list(taskset.tasks), "networks": [
      r.to_json() for _, r in sorted(table.items(), key=lambda kv: (len(kv[0]), kv[0]))]})


def _write_groupings(taskset, config, workdir, gains, groupings) -> None:
  """groups_<method>.json for each; groups.json, gains.json and gains.png for the first."""
  for method, grouping in groupings.items():
    io.write_json(os.path.join(workdir, f"groups_{method}.json"), grouping.to_json())
  first = config.grouping_methods()
  if not first:
    return
  io.write_json(os.path.join(workdir, "groups.json"), groupings[first[0]].to_json())
  with_gains = [x for x in first if x in methods_lib.GAIN_METHODS or x in ("hoa", "landscape")]
  if with_gains:
    method = with_gains[0]
    g = gains[method] if method in ("hoa", "landscape") else gains[
        methods_lib.gain_spec(method, config.principled_form).measure]
    g.save(os.path.join(workdir, "gains.json"))
    plots.gains_heatmap(taskset.tasks, g.gains, groupings[method].groups,
                        os.path.join(workdir, "gains.png"),
                        title=f"{taskset.name}: {g.measure} gains, {method} groups")


def _same_partition(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> bool:
  return sorted(map(sorted, a)) == sorted(map(sorted, b))


def _network_identity(taskset: TaskSet, config: PipelineConfig) -> dict:
  """What determines a network's result besides its group and seed."""
  return {"run_key": config.run_key, "train_steps": config.train_steps or taskset.train_steps,
          "chunk_size": config.chunk_size, "tasks": list(taskset.tasks)}


def _settings(taskset: TaskSet, config: PipelineConfig) -> dict:
  return {
      "run_key": config.run_key,
      "methods": list(config.methods),
      "constraints": config.constraints.to_json(),
      "principled_form": config.principled_form,
      "collect": config.collect_config().settings(taskset),
      "eval_seeds": list(config.eval_seeds),
      "train_steps": config.train_steps or taskset.train_steps,
      "chunk_size": config.chunk_size,
      "random_draws": config.random_draws,
      "landscape": {"samples": config.landscape_samples, "inits": config.landscape_inits,
                    "knn": config.landscape_knn, "head_init": config.landscape_head_init},
      "resources": dataclasses.asdict(config.resources),
  }


def _collect_or_reuse(taskset: TaskSet, config: PipelineConfig, workdir: str
                      ) -> tuple[dict[str, Gains], float, dict[str, history_lib.GainsHistory]]:
  """Reuses ``gains_<measure>.json`` written by an identical earlier run.

  Otherwise collects, resuming the checkpoint an interrupted identical run left
  (with a run key: without one nothing is reused). Returns the gains, the
  collection seconds and the gains histories (empty when reused gains have no
  history of the same run, e.g. written before histories existed).
  """
  cc = config.collect_config()
  key = {"run_key": config.run_key, "collect": cc.settings(taskset)}
  paths = {x: os.path.join(workdir, f"gains_{x}.json") for x in cc.measures}
  history_path = os.path.join(workdir, HISTORY_FILE)
  # One directory per run key and settings: a rerun with other settings never meets
  # this run's checkpoint, and coming back to these settings resumes it.
  checkpoint_dir = (os.path.join(workdir, "checkpoints", "collect", checkpoint.digest(key))
                    if config.run_key is not None else None)
  if config.run_key is not None and all(os.path.exists(p) for p in paths.values()):
    saved = {x: Gains.load(p) for x, p in paths.items()}
    if all(g.settings.get("key") == key for g in saved.values()):
      logging.info("reusing gains saved in %s", workdir)
      clear_checkpoint(checkpoint_dir, workdir)  # left by a run killed after saving its gains
      return (saved, float(next(iter(saved.values())).settings.get("seconds", 0.0)),
              _saved_histories(history_path, key))
  start = time.perf_counter()
  gains, _, histories = run_collection(taskset, cc, checkpoint_dir=checkpoint_dir,
                                       identity=key, return_history=True)
  seconds = time.perf_counter() - start
  # Before the gains files: gains a rerun reuses always come with their history.
  history_lib.save_histories(history_path, list(histories.values()), key=key)
  for x, g in gains.items():
    gains[x] = dataclasses.replace(g, settings=dict(g.settings, key=key))
    gains[x].save(paths[x])
  if checkpoint_dir is not None:
    clear_checkpoint(checkpoint_dir, workdir)  # the gains files are the resume point now
  return gains, seconds, histories


HISTORY_FILE = "gains_history.json"


def _saved_histories(path: str, key: dict) -> dict[str, history_lib.GainsHistory]:
  """The histories in ``path`` if the run with this collection key wrote them, else {}."""
  if not os.path.exists(path):
    return {}
  try:
    histories, rest = history_lib.load_histories(path)
  except UserError as e:  # only a figure depends on it: not worth failing the run
    logging.warning("ignoring the gains history: %s", e)
    return {}
  return histories if rest.get("key") == json.loads(json.dumps(key)) else {}


def _plot_history(taskset: TaskSet, config: PipelineConfig, workdir: str,
                  histories: dict[str, history_lib.GainsHistory]) -> None:
  """gains_over_time.png for the first gain measure, when its history is known."""
  measure = config.collect_config().measures[0]
  if measure not in histories:
    logging.info("no gains history of this run in %s: gains_over_time.png not written", workdir)
    return
  h = histories[measure]
  stable = h.stable_step()
  settled = ("" if stable is None else f" (ρ ≥ {history_lib.STABLE_CORRELATION:g} from step "
             f"{stable} of {int(h.steps[-1])})")
  plots.gains_over_time(h, os.path.join(workdir, "gains_over_time.png"), close=True,
                        title=f"{taskset.name}: {measure} gains over training steps{settled}")
