"""The whole pipeline for any TaskSet: collect → group → evaluate → report (docs/design.md §1).

Launchers only turn flags into a TaskSet and a :class:`PipelineConfig` and call
:func:`run_pipeline`; users call it from Python or a notebook. What each
method does lives in its record (:mod:`tgroup.methods`); this module only runs
the stages in order. The files a run writes are listed in docs/contract.md.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

import jax
import numpy as np

from tgroup import distributed
from tgroup import evaluate
from tgroup import identity
from tgroup import io
from tgroup import mesh as mesh_lib
from tgroup import methods as methods_lib
from tgroup import plots
from tgroup import report as report_lib
from tgroup.budget_sweep import sweep
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, Gains
from tgroup.gains.reuse import Collected, collect_for_run
from tgroup.grouping import Constraints, solve_grouping
from tgroup.methods import CalibratedConfig, LandscapeConfig, Method
from tgroup.netcache import MemoryCache, NetworkCache
from tgroup.regret import Regret
from tgroup.resources import HalfSizeNetworks, Resources, limits_only, run_budget
from tgroup.tasks import TaskSet

METHODS = methods_lib.METHODS
PRINCIPLED_FORMS = tuple(methods_lib.PRINCIPLED_FORMS)
format_table = report_lib.format_table


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Settings of one pipeline run.

  Attributes:
    methods: names among :data:`METHODS`, or :class:`~tgroup.methods.Method`
      records of your own; the first grouping method fills groups.json.
    constraints: grouping constraints (every method that can honour them).
    principled_form: ``marginal`` (the default: a natural zero, so the MIP may
      choose how many groups; chosen by the study suite, docs/results.md#study)
      or ``self_pair`` (the paper's; needs ``constraints.num_groups`` or
      ``max_groups`` since it always prefers singletons when free).
    collect: collection settings; its measures are set from ``methods``.
    eval_seeds: seeds of the group networks; results are averaged over them.
    train_steps: steps of every group network (None: the TaskSet's default).
    chunk_size: networks trained at once (results do not depend on the others in
      a chunk, but do on its size: keep it fixed when comparing runs).
    random_draws: random partitions drawn for ``random``.
    max_oracle_networks: refuse the oracle when 2^m − 1 exceeds this.
    landscape: settings of the landscape method (and of the landscape signal of
      ``calibrated``).
    calibrated: settings of the calibrated method.
    quiet: no progress lines and no table.
    resources: network costs, budgets and the budget sweep.
    mesh: the devices to run on, ``AXIS:N[,AXIS:N]`` over ``data``, ``combos``
      and ``networks``, or ``auto`` (:mod:`tgroup.mesh`); None: one device.
    grouping_time_limit_s: wall-clock limit of each grouping MIP (column
      generation included); the groups then carry the gap reached. None: the
      solver's own limits.
  """
  methods: tuple[str | Method, ...] = ("principled", "tag", "stl", "mtl_all")
  constraints: Constraints = Constraints()
  principled_form: str = "marginal"
  collect: CollectConfig = CollectConfig()
  eval_seeds: tuple[int, ...] = (0,)
  train_steps: int | None = None
  chunk_size: int = 16
  random_draws: int = 5
  max_oracle_networks: int = 1023
  landscape: LandscapeConfig = LandscapeConfig()
  calibrated: CalibratedConfig = CalibratedConfig()
  quiet: bool = False
  resources: Resources = Resources()
  mesh: str | None = None
  grouping_time_limit_s: float | None = None

  def method_records(self) -> list[Method]:
    """The methods' records, in order (UserError for unknown or repeated names)."""
    names = [m.name if isinstance(m, Method) else m for m in self.methods]
    unknown = [m for m in self.methods if not isinstance(m, Method) and m not in METHODS]
    if not names or unknown:
      raise UserError(f"unknown method(s) {unknown}; available: {', '.join(METHODS)}")
    if len(set(names)) != len(names):
      raise UserError(f"methods repeat: {names}")
    return [m if isinstance(m, Method) else methods_lib.get(m, self.principled_form)
            for m in self.methods]

  def validate(self, taskset: TaskSet) -> None:
    """Fails fast, before any training, on every setting a user can get wrong."""
    records = self.method_records()
    taskset.check()
    if self.mesh is not None:
      mesh_lib.MeshSpec.parse(self.mesh).check(len(jax.devices()), batch_size=taskset.batch_size,
                                               chunk_size=self.chunk_size)
    if taskset.num_tasks < 2:
      raise UserError(f"grouping needs at least two tasks; the TaskSet has only "
                      f"{taskset.tasks[0]!r}")
    c = self.constraints
    c.check_tasks(taskset.tasks)
    free = c.num_groups is None and c.max_groups is None
    for method in records:
      if free and method.needs_group_count:
        raise UserError(f"{method.name} with self-pair gains needs num_groups or max_groups "
                        "(with the number of groups free it always picks singletons); set one"
                        + (", or use principled_form=marginal" if method.name == "principled"
                           else ""))
      if method.needs_validation and taskset.val is None:
        raise UserError(f"{method.name} selects on validation results, but the TaskSet has no "
                        "validation split")
      unsupported = [n for n in c.active() if n not in method.constraints]
      if unsupported:
        raise UserError(f"{method.name} can honour only {' and '.join(method.constraints)}, "
                        f"not {', '.join(unsupported)} ({method.summary})")
      if method.check is not None:
        method.check(self, taskset)
    for name, value in (("eval_seeds", len(self.eval_seeds)), ("chunk_size", self.chunk_size),
                        ("train_steps", self.train_steps or 1)):
      if value < 1:
        raise UserError(f"{name} must be >= 1, got {value}")
    if self.grouping_time_limit_s is not None and not self.grouping_time_limit_s > 0:
      raise UserError(f"grouping_time_limit_s must be > 0, got {self.grouping_time_limit_s}")
    self.resources.validate(records)
    collect = self.collect_config(taskset)
    collect.validate(taskset.num_tasks)
    if any(m.measure is not None for m in records):  # a collection run will train
      collect.check_pair_count(taskset.num_tasks, collect.steps or taskset.train_steps)
    self.check_feasible(taskset)

  def check_feasible(self, taskset: TaskSet, budget=None) -> None:
    """Infeasible constraints (and budget limits) fail now, not after the collection
    run: the same model with zero gains is feasible exactly when the real one is."""
    zeros = np.zeros((taskset.num_tasks, taskset.num_tasks))
    for method in self.method_records():
      if method.objective is not None:
        solve_grouping(list(taskset.tasks), zeros, method.objective, self.constraints,
                       overlap=method.overlap, budget=budget)

  def network_identity(self, taskset: TaskSet) -> dict | None:
    """What a saved group network's results depend on (:mod:`tgroup.identity`)."""
    return identity.network_identity(taskset, self.train_steps or taskset.train_steps,
                                     self.chunk_size, **({"mesh": self.mesh} if self.mesh else {}))

  def collect_config(self, taskset: TaskSet | None = None) -> CollectConfig:
    """The collection settings, measuring what the methods need (principled if none).

    With a TaskSet, methods' further signals it cannot give are left out
    (first-order gains of a TaskSet that scores lookaheads on its own losses).
    """
    records = self.method_records()
    measures = [m.measure for m in records if m.measure]
    unavailable = ({"first_order"} if taskset is not None
                   and taskset.lookahead_losses is not None else set())
    measures += [s for m in records for s in m.signals if s not in unavailable]
    return dataclasses.replace(self.collect, measures=tuple(dict.fromkeys(measures)) or
                               ("principled",), mesh=self.mesh)


def run_pipeline(taskset: TaskSet, config: PipelineConfig, workdir: str,
                 gains: Mapping[str, Gains] | None = None) -> dict:
  """Collects gains, groups, trains every method's networks and writes the contract.

  Args:
    taskset: the problem. Saved gains and networks in ``workdir`` are reused,
      and an interrupted collection resumed, only when the TaskSet has a
      definition (benchmark factories give one; see
      :meth:`~tgroup.tasks.TaskSet.with_definition`) and every setting matches.
    config: the run's settings.
    workdir: where every file goes (docs/contract.md).
    gains: gains you collected already (:func:`tgroup.gains.collect_gains`), by
      measure: used instead of collecting them again.

  Returns:
    The report (also written to ``workdir/report.json``).

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
  records = config.method_records()
  budget = run_budget(taskset, config.resources)
  if budget is not None and budget.active():
    config.check_feasible(taskset, budget)  # budget limits too fail before any training
  os.makedirs(workdir, exist_ok=True)
  distributed.barrier("tgroup run start")  # nobody writes before everyone has looked
  key = config.network_identity(taskset)
  mesh = mesh_lib.stage_mesh(config.mesh, "train",
                             batch_size=taskset.batch_size, chunk_size=config.chunk_size)
  options = dict(seeds=config.eval_seeds, steps=config.train_steps, chunk_size=config.chunk_size,
                 quiet=config.quiet, mesh=mesh)
  cache = lambda k: NetworkCache(os.path.join(workdir, "networks"), k) if k else MemoryCache()
  train = lambda groups, c=cache(key): evaluate.train_groups(taskset, groups, cache=c, **options)
  half = (HalfSizeNetworks(taskset, options, cache(key and dict(key, half_size=True)))
          if config.resources.allow_half_size else None)

  # Collect: one multi-task run measures every gain the methods need.
  collected = Collected({}, 0.0, {})
  if any(m.measure for m in records):
    collected = collect_for_run(taskset, config.collect_config(taskset), workdir, gains or {})

  # Group: each method in order; baselines last (random copies a group count).
  context = methods_lib.Context(taskset, config, workdir, collected.gains, collected.seconds,
                                limits_only(budget), {}, train)
  outcomes = {}
  for method in sorted(records, key=lambda m: m.baseline):
    outcomes[method.name] = method.run(context)
    if outcomes[method.name].grouping is not None:
      context.groupings[method.name] = outcomes[method.name].grouping
  outcomes = {m.name: outcomes[m.name] for m in records}
  _write_groupings(taskset, workdir, records, outcomes)

  # Evaluate: every draw's networks, and STL's (Δm's reference), trained once each.
  m = taskset.num_tasks
  stl = [(i,) for i in range(m)]
  results = train([g for o in outcomes.values() for groups, _ in o.draws for g in groups] + stl)
  for outcome in outcomes.values():
    results = {**(outcome.table or {}), **results}

  # Report.
  report = {"benchmark": taskset.name, "description": taskset.description,
            "tasks": list(taskset.tasks), "metric": taskset.metric_name,
            "settings": _settings(taskset, config), "methods": {}}
  if taskset.ground_truth_groups is not None:
    report["ground_truth_groups"] = [list(g) for g in taskset.ground_truth_groups]
  reference = next((outcomes[r.name].table for r in records if r.reference), None)
  regret = (Regret(taskset, config.constraints, reference, results, limits_only(budget))
            if reference is not None else None)
  stl_metric = [results[g].test_metric[g[0]] for g in stl]
  for method in records:
    report["methods"][method.name] = report_lib.method_report(
        taskset, method, outcomes[method.name], results, stl_metric, regret, half)
  if regret is not None:
    report["oracle_by_num_groups"] = regret.by_num_groups()
  if config.resources.budget_sweep:
    method = next(r for r in records if r.objective is not None)
    report["frontier"] = sweep(taskset, config, workdir, method, outcomes[method.name], budget,
                               train, report, half)
  io.write_json(os.path.join(workdir, "report.json"), report)
  plots.per_task_bars(report, os.path.join(workdir, "results.png"))
  if not config.quiet:
    print(format_table(report))
    note = report_lib.better_num_groups(report)
    if note:
      print(note)
  return report


def _write_groupings(taskset: TaskSet, workdir: str, records: Sequence[Method],
                     outcomes: Mapping) -> None:
  """groups_<method>.json for each; groups.json, gains.json and gains.png for the first."""
  grouped = [r.name for r in records if outcomes[r.name].grouping is not None]
  for name in grouped:
    io.write_json(os.path.join(workdir, f"groups_{name}.json"), outcomes[name].grouping.to_json())
  if not grouped:
    return
  io.write_json(os.path.join(workdir, "groups.json"), outcomes[grouped[0]].grouping.to_json())
  with_gains = [name for name in grouped if outcomes[name].gains is not None]
  if with_gains:
    outcome = outcomes[with_gains[0]]
    outcome.gains.save(os.path.join(workdir, "gains.json"))
    plots.gains_heatmap(taskset.tasks, outcome.gains.gains, outcome.grouping.groups,
                        os.path.join(workdir, "gains.png"),
                        title=f"{taskset.name}: {outcome.gains.measure} gains, "
                        f"{with_gains[0]} groups")


def _settings(taskset: TaskSet, config: PipelineConfig) -> dict:
  return {
      "taskset": taskset.definition,
      "methods": [m.name for m in config.method_records()],
      "constraints": config.constraints.to_json(),
      "principled_form": config.principled_form,
      "collect": config.collect_config(taskset).settings(taskset),
      "eval_seeds": list(config.eval_seeds),
      "train_steps": config.train_steps or taskset.train_steps,
      "chunk_size": config.chunk_size,
      "random_draws": config.random_draws,
      "landscape": config.landscape.to_json(),
      "calibrated": dataclasses.asdict(config.calibrated),
      "resources": dataclasses.asdict(config.resources),
      **({"mesh": config.mesh} if config.mesh else {}),
  }
