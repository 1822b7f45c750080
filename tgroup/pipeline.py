"""The whole pipeline for any TaskSet: collect → group → evaluate → report (DESIGN §1, §6).

Launchers only turn flags into a TaskSet and a :class:`PipelineConfig` and call
:func:`run_pipeline`; users call it from Python or a notebook.

Files written into ``workdir`` (atomically):
  gains.json, gains_<measure>.json   the gains of the first / every gain method
  groups.json, groups_<method>.json  the grouping of the first / every grouping method
  networks.json                      per-network test results (reused on rerun)
  report.json                        every method's groups and results
  gains.png, results.png             heatmap with groups outlined; per-task bars
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

from absl import logging
import numpy as np

from tgroup import evaluate
from tgroup import io
from tgroup import plots
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, Gains, run_collection
from tgroup.grouping import Constraints, Grouping, solve_grouping
from tgroup.tasks import TaskSet

# Method -> (measure it groups on, grouping objective, overlapping groups).
# The principled method's measure and objective depend on its form (see below).
GAIN_METHODS = {
    "principled": None,
    "tag": ("tag", "tag", True),
}
FIXED_METHODS = ("stl", "mtl_all")
METHODS = tuple(GAIN_METHODS) + FIXED_METHODS
PRINCIPLED_FORMS = {"self_pair": ("principled", "principled"),
                    "marginal": ("principled_marginal", "marginal")}


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
    max_parallel: networks trained at once.
    quiet: no progress lines and no table.
    run_key: settings that identify the problem (e.g. the launcher's benchmark
      flags); saved gains and network results in ``workdir`` are reused only
      when it and every other setting match.
  """
  methods: tuple[str, ...] = ("principled", "tag", "stl", "mtl_all")
  constraints: Constraints = Constraints()
  principled_form: str = "self_pair"
  collect: CollectConfig = CollectConfig()
  eval_seeds: tuple[int, ...] = (0,)
  train_steps: int | None = None
  max_parallel: int = 64
  quiet: bool = False
  run_key: dict[str, Any] | None = None

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
    if ("principled" in self.methods and self.principled_form == "self_pair"
        and c.num_groups is None and c.max_groups is None):
      raise UserError("the self-pair principled form needs num_groups or max_groups (with the "
                      "number of groups free it always picks singletons); set one, or use "
                      "principled_form=marginal")
    if not self.eval_seeds:
      raise UserError("eval_seeds must name at least one seed")
    if self.train_steps is not None and self.train_steps < 1:
      raise UserError(f"train_steps must be >= 1, got {self.train_steps}")
    self.collect_config().validate(taskset.num_tasks)
    # Infeasible constraints fail now, not after the collection run: the same
    # model with zero gains is feasible exactly when the real one is.
    zeros = np.zeros((taskset.num_tasks, taskset.num_tasks))
    for method in self.methods:
      if method in GAIN_METHODS:
        _, objective, overlap = self.method_spec(method)
        solve_grouping(list(taskset.tasks), zeros, objective, c, overlap=overlap)

  def method_spec(self, method: str) -> tuple[str, str, bool]:
    """(measure, grouping objective, overlap) of a gain-based method."""
    if method == "principled":
      return (*PRINCIPLED_FORMS[self.principled_form], False)
    return GAIN_METHODS[method]

  def collect_config(self) -> CollectConfig:
    measures = tuple(dict.fromkeys(self.method_spec(m)[0] for m in self.methods
                                   if m in GAIN_METHODS))
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
  os.makedirs(workdir, exist_ok=True)
  gain_methods = [m for m in config.methods if m in GAIN_METHODS]
  gains, collect_seconds = (_collect_or_reuse(taskset, config, workdir) if gain_methods
                            else ({}, 0.0))
  groupings, group_seconds = _group(taskset, config, workdir, gains, gain_methods)
  method_groups = {m: _groups_of(taskset, m, groupings.get(m)) for m in config.methods}
  stl_groups = [(i,) for i in range(taskset.num_tasks)]  # always trained: Δm's reference
  results = _train_or_reuse(taskset, config, workdir,
                            stl_groups + [g for gs, _ in method_groups.values() for g in gs])

  tasks = list(taskset.tasks)
  stl_metric = [results[(i,)].test_metric[i] for i in range(len(tasks))]
  report = {
      "benchmark": taskset.name,
      "description": taskset.description,
      "tasks": tasks,
      "metric": taskset.metric_name,
      "settings": _settings(taskset, config),
      "methods": {},
  }
  if taskset.ground_truth_groups is not None:
    report["ground_truth_groups"] = [list(g) for g in taskset.ground_truth_groups]
  for method, (groups, assignment) in method_groups.items():
    scored = evaluate.score_grouping(taskset, groups, assignment, results)
    metrics = [scored["per_task"][t]["test_metric"] for t in tasks]
    entry = {
        "groups": [[tasks[i] for i in g] for g in groups],
        "per_task": scored["per_task"],
        "total_test_loss": scored["total_test_loss"],
        "total_test_error": scored["total_test_error"],
        "delta_m": evaluate.delta_m(metrics, stl_metric, taskset.higher_is_better),
        "regret": None,
        "seconds": {"collect": collect_seconds if method in groupings else 0.0,
                    "group": group_seconds.get(method, 0.0),
                    "train": scored["train_seconds"]},
    }
    if method in groupings:
      entry["measure"] = config.method_spec(method)[0]
      entry["grouping_status"] = groupings[method].status
      entry["predicted_objective"] = groupings[method].objective
    if taskset.ground_truth_groups is not None:
      entry["matches_ground_truth"] = _same_partition(entry["groups"],
                                                      report["ground_truth_groups"])
    report["methods"][method] = entry
  io.write_json(os.path.join(workdir, "report.json"), report)
  plots.per_task_bars(report, os.path.join(workdir, "results.png"))
  if not config.quiet:
    print(format_table(report))
  return report


def _group(taskset: TaskSet, config: PipelineConfig, workdir: str, gains: dict[str, Gains],
           gain_methods: Sequence[str]) -> tuple[dict[str, Grouping], dict[str, float]]:
  """Solves each gain method's MIP; writes groups_*.json, groups.json, gains.json, gains.png."""
  tasks = list(taskset.tasks)
  groupings, seconds = {}, {}
  for method in gain_methods:
    measure, objective, overlap = config.method_spec(method)
    start = time.perf_counter()
    groupings[method] = solve_grouping(tasks, gains[measure].gains, objective,
                                       config.constraints, overlap=overlap)
    seconds[method] = time.perf_counter() - start
    io.write_json(os.path.join(workdir, f"groups_{method}.json"), groupings[method].to_json())
  if gain_methods:
    first, first_gains = groupings[gain_methods[0]], gains[config.method_spec(gain_methods[0])[0]]
    io.write_json(os.path.join(workdir, "groups.json"), first.to_json())
    first_gains.save(os.path.join(workdir, "gains.json"))
    plots.gains_heatmap(tasks, first_gains.gains, first.groups, os.path.join(workdir, "gains.png"),
                        title=f"{taskset.name}: {first_gains.measure} gains, "
                              f"{gain_methods[0]} groups")
  return groupings, seconds


def _groups_of(taskset: TaskSet, method: str, grouping: Grouping | None
               ) -> tuple[list[tuple[int, ...]], dict[int, int] | None]:
  """A method's groups as task indices, and the serving assignment of a cover."""
  m = taskset.num_tasks
  if method == "stl":
    return [(i,) for i in range(m)], None
  if method == "mtl_all":
    return [tuple(range(m))], None
  index = {t: i for i, t in enumerate(taskset.tasks)}
  return ([tuple(index[t] for t in g) for g in grouping.groups],
          {index[t]: k for t, k in grouping.assignment.items()})


def format_table(report: dict) -> str:
  """A Markdown table: method, groups, total test loss, (total test error,) Δm."""
  has_error = any(e["total_test_error"] is not None for e in report["methods"].values())
  columns = ["method", "groups", "total test loss"]
  columns += ["total test error"] if has_error else []
  columns += ["Δm vs STL (%)"]
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for name, e in report["methods"].items():
    row = [name, " ".join("{" + ",".join(g) + "}" for g in e["groups"]),
           f"{e['total_test_loss']:.4f}"]
    if has_error:
      err = e["total_test_error"]
      row.append("n/a" if err is None else f"{err:.4f}")
    row.append(f"{e['delta_m']:+.2f}")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _same_partition(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> bool:
  return sorted(map(sorted, a)) == sorted(map(sorted, b))


def _settings(taskset: TaskSet, config: PipelineConfig) -> dict:
  collect = config.collect_config().settings(taskset)
  return {
      "run_key": config.run_key,
      "methods": list(config.methods),
      "constraints": config.constraints.to_json(),
      "principled_form": config.principled_form,
      "collect": collect,
      "eval_seeds": list(config.eval_seeds),
      "train_steps": config.train_steps or taskset.train_steps,
  }


def _collect_or_reuse(taskset: TaskSet, config: PipelineConfig, workdir: str
                      ) -> tuple[dict[str, Gains], float]:
  """Reuses ``gains_<measure>.json`` written by an identical earlier run."""
  cc = config.collect_config()
  key = {"run_key": config.run_key, "collect": cc.settings(taskset)}
  paths = {m: os.path.join(workdir, f"gains_{m}.json") for m in cc.measures}
  if config.run_key is not None and all(os.path.exists(p) for p in paths.values()):
    saved = {m: Gains.load(p) for m, p in paths.items()}
    if all(g.settings.get("key") == key for g in saved.values()):
      logging.info("reusing gains saved in %s", workdir)
      return saved, float(next(iter(saved.values())).settings.get("seconds", 0.0))
  start = time.perf_counter()
  gains, _ = run_collection(taskset, cc)
  seconds = time.perf_counter() - start
  for m, g in gains.items():
    g = dataclasses.replace(g, settings=dict(g.settings, key=key))
    g.save(paths[m])
    gains[m] = g
  return gains, seconds


def _train_or_reuse(taskset: TaskSet, config: PipelineConfig, workdir: str,
                    groups: Sequence[tuple[int, ...]]) -> dict:
  """Trains the networks not already in ``networks.json`` from an identical run."""
  path = os.path.join(workdir, "networks.json")
  key = {"run_key": config.run_key, "eval_seeds": list(config.eval_seeds),
         "train_steps": config.train_steps or taskset.train_steps}
  cached: dict[tuple[int, ...], evaluate.NetworkResult] = {}
  if config.run_key is not None and os.path.exists(path):
    saved = io.read_json(path)
    if saved.get("key") == key:
      for row in saved["networks"]:
        g = tuple(row["group"])
        cached[g] = evaluate.NetworkResult(
            g, np.array(row["test_loss"]), np.array(row["test_metric"]),
            None if row["val_loss"] is None else np.array(row["val_loss"]), row["seconds"])
  todo = [g for g in dict.fromkeys(tuple(sorted(g)) for g in groups) if g not in cached]
  if todo:
    cached.update(evaluate.train_groups(taskset, todo, seeds=config.eval_seeds,
                                        steps=config.train_steps,
                                        max_parallel=config.max_parallel, quiet=config.quiet))
    io.write_json(path, {"key": key, "networks": [
        {"group": list(g), "test_loss": r.test_loss.tolist(),
         "test_metric": r.test_metric.tolist(),
         "val_loss": None if r.val_loss is None else r.val_loss.tolist(),
         "seconds": r.seconds} for g, r in cached.items()]})
  return cached
