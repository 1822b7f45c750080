r"""Group tasks from a saved gains file, with no training and no JAX.

Reads a gains.json (docs/contract.md) or one of TAG's released affinity files (same
orientation: ``gains[i][j]`` is what task j receives from task i), solves the
grouping MIP under the constraint flags and prints the groups; ``--output``
writes groups.json's contract atomically.

  python -m launch.group --gains=WORKDIR/gains.json --num_groups=3
  python -m launch.group --gains=celeba_tag_affinity.json --objective=tag \
      --overlap --num_groups=3 --output=/tmp/groups.json

TAG's own selection is ``--objective=tag --overlap`` (a cover: groups may
overlap and each task is served by its best chosen group); TAG's notebooks
report the objective divided by the number of tasks, which is printed too.
With ``--quiet`` and no ``--output``, the groups.json content is printed on
stdout instead of the table, for scripts.

``--num_groups`` unset or 0 leaves the number of groups free; here that needs
``--objective=marginal`` or ``tag`` (the ``--principled_form`` its help names
belongs to the benchmark launchers), or a ``--max_groups``.

Budgets (``--budget``, ``--max_network_cost``, ``--allow_half_size``,
``--budget_sweep``) need network costs; with no model here to measure, they come
from ``--costs_file`` (per-task, per-group and half-size costs) or
``--cost_model=uniform`` (every network costs 1, so a budget counts networks):

  python -m launch.group --gains=gains.json --objective=marginal \
      --costs_file=costs.json --budget=10 --allow_half_size
  python -m launch.group --gains=gains.json --objective=marginal \
      --costs_file=costs.json --budget_sweep=8 --output=frontier.json

A sweep prints one line per budget and writes frontier.json's contract.
"""
from __future__ import annotations

import os
import time
from typing import Any

from absl import flags
from absl import logging
import numpy as np

from launch import cli
from launch import constraint_flags
from tgroup.errors import UserError
from tgroup.gains.gains import Gains
from tgroup.grouping import Grouping
from tgroup.grouping import solve_grouping
from tgroup.grouping.budget import Budget, file_costs
from tgroup.grouping.frontier import budget_frontier, frontier_json

_GAINS = flags.DEFINE_string(
    "gains", None, "The gains file: a gains.json written by a launcher, or a TAG "
    "affinity/cosine file; gains[i][j] is what task j receives from task i.")
# The objectives that take a gains matrix as it is; tgroup.grouping may know more
# (e.g. HOA's, whose input is a pairwise table), which need their own reading.
_GAINS_OBJECTIVES = ("principled", "marginal", "tag")
_OBJECTIVE = flags.DEFINE_enum(
    "objective", "principled", list(_GAINS_OBJECTIVES),
    "How a task scores in a group S. principled: mean of gains[i][a] over i in S, "
    "self-pair included (always prefers singletons when the number of groups is "
    "free, so it needs --num_groups or --max_groups); marginal: the sum over i != a "
    "divided by |S| (a singleton scores 0, so the number of groups may be free); "
    "tag: mean over i != a, groups of >= 2 tasks (TAG's selection, with --overlap).")
_OVERLAP = flags.DEFINE_bool(
    "overlap", False, "Let groups overlap: a cover where each task is served by its "
    "best chosen group, as TAG's selection does (use it with --objective=tag). "
    "Off: a partition, every task in exactly one group.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Write groups.json's contract here (atomically); unset: only print.")
for _module in (cli, constraint_flags):
  flags.adopt_module_key_flags(_module)

# Which objective each file's "measure" (gains.json) or "kind" (TAG's files) was
# made for; a mismatch is only warned about, since users may mean it.
_OBJECTIVE_OF_MEASURE = {
    "principled": "principled",
    "principled_marginal": "marginal",
    "tag": "tag",
    "tag_affinity": "tag",
    "cosine_similarity": "tag",
}


def _warn_about_inputs(data: Gains, objective: str) -> None:
  """Warnings for inputs that are probably, but not certainly, a mistake."""
  expected = _OBJECTIVE_OF_MEASURE.get(data.measure)
  if expected is not None and expected != objective:
    logging.warning("the gains were measured as %r, made for --objective=%s, not %s; "
                    "grouping anyway", data.measure, expected, objective)
  used = data.counts == 0
  if objective != "principled":
    # Only the principled objective reads the diagonal (the self-pair).
    np.fill_diagonal(used, False)
  if used.any():
    i, j = np.argwhere(used)[0]
    logging.warning("%d gain entries the %s objective uses were never collected "
                    "(count 0), e.g. gains[%d][%d] (%s -> %s); they count as %g",
                    int(used.sum()), objective, i, j, data.tasks[i], data.tasks[j],
                    data.gains[i, j])


def _budget(tasks, resources: dict) -> Budget | None:
  """The budget flags as a Budget, with costs from --costs_file or uniform ones."""
  if not (resources["budget"] is not None or resources["max_network_cost"] is not None
          or resources["allow_half_size"] or resources["budget_sweep"]):
    return None
  path = resources["costs_file"]
  if path:
    cost, model = file_costs(path, tasks), f"file {os.path.basename(path)}"
  elif resources["cost_model"] == "uniform":
    cost, model = (lambda g, half: 1.0), "uniform"
  else:
    raise UserError(f"--cost_model={resources['cost_model']} is measured on a model, which "
                    "launch.group does not have: give --costs_file, or --cost_model=uniform")
  return Budget(cost=cost, total=resources["budget"],
                max_network_cost=resources["max_network_cost"],
                allow_half_size=resources["allow_half_size"], cost_model=model)


def _sweep(data: Gains, objective: str, constraints, budget: Budget, num_points: int) -> None:
  """The budget sweep: one line per budget; frontier.json's contract to --output."""
  points = budget_frontier(data.tasks, data.gains, objective, budget, num_points, constraints,
                           overlap=_OVERLAP.value)
  out = frontier_json(points, budget.cost_model)
  out["gains_file"], out["objective"] = _GAINS.value, objective
  lines = [f"budget sweep over {len(points)} budgets ({budget.cost_model}), {objective}:"]
  lines += [f"  budget {p.budget:.6g}: cost {p.cost:.6g}, predicted {p.predicted:.6f}, "
            + " ".join("{" + ",".join(g) + "}" + ("½" if h else "")
                       for g, h in zip(p.grouping.groups, p.grouping.half_size))
            for p in points]
  cli.emit(out, "\n".join(lines), _OUTPUT.value)


def _report(result: Grouping, data: Gains, path: str, seconds: float) -> str:
  """The printed table: groups, which tasks each serves, objective, status."""
  m = len(data.tasks)
  form = ("cover (each task served by its best chosen group)" if result.overlap
          else "partition")
  lines = [
      f"{m} tasks from {path} (measure: {data.measure})",
      f"objective {result.objective_name}, {form}; constraints: "
      f"{', '.join(_describe(result.constraints)) or 'none'}",
  ]
  served = {k: [t for t in data.tasks if result.assignment[t] == k]
            for k in range(len(result.groups))}
  for k, group in enumerate(result.groups):
    lines.append(f"  group {k + 1}: {', '.join(group)}")
    if result.overlap and served[k] != list(group):
      lines.append(f"    serves: {', '.join(served[k])}")
  mean = (f" (mean over the {m} tasks: {result.objective / m:.6f}, as TAG's notebooks "
          "report it)" if result.objective_name == "tag" else "")
  lines.append(f"objective: {result.objective:.6f}{mean}")
  if result.network_costs is not None:
    halves = [f"{'½' if h else ''}{c:g}" for c, h in zip(result.network_costs, result.half_size)]
    lines.append(f"network costs ({result.budget['cost_model']}): {', '.join(halves)}; "
                 f"total {result.total_cost:g}")
  over = ("all candidate groups" if result.candidates == "all"
          else "generated candidate groups")
  lines.append(f"status: {result.status} over {over} ({seconds:.2f} s)")
  return "\n".join(lines)


def _describe(constraints: dict[str, Any]) -> list[str]:
  """The set constraints of groups.json's "constraints", written as their flags."""
  out = []
  for name, value in constraints.items():
    if value is None or value == [] or (name == "min_group_size" and value == 1):
      continue
    if isinstance(value, list):
      value = ",".join(":".join(v) if isinstance(v, list) else v for v in value)
    out.append(f"--{name}={value}")
  return out


def main(argv):
  del argv
  if not _GAINS.value:
    raise UserError("--gains is required: a gains.json or a TAG affinity file "
                    "(see --helpshort)")
  data = Gains.load(_GAINS.value)
  objective = _OBJECTIVE.value
  constraints = constraint_flags.constraints()
  constraints.check_tasks(data.tasks)
  if (objective == "principled" and constraints.num_groups is None
      and constraints.max_groups is None):
    raise UserError("--objective=principled needs --num_groups or --max_groups (with the "
                    "number of groups free, the self-pair gain always prefers singletons); "
                    "set one, or use --objective=marginal")
  _warn_about_inputs(data, objective)

  resources = constraint_flags.resource_flags()
  budget = _budget(data.tasks, resources)
  if resources["budget_sweep"]:
    _sweep(data, objective, constraints, budget, resources["budget_sweep"])
    return
  start = time.perf_counter()
  result = solve_grouping(data.tasks, data.gains, objective, constraints,
                          overlap=_OVERLAP.value, budget=budget)
  seconds = time.perf_counter() - start
  if objective == "tag" and not _OVERLAP.value:
    logging.info("this is a partition into groups of >= 2 tasks; TAG's own selection "
                 "is a cover (--overlap)")

  out = result.to_json()
  # Where the answer came from, so a groups.json explains itself.
  out["gains_file"] = _GAINS.value
  out["measure"] = data.measure
  cli.emit(out, _report(result, data, _GAINS.value, seconds), _OUTPUT.value)


if __name__ == "__main__":
  cli.run(main)
