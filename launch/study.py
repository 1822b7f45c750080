r"""The study suite: every method on a fixed set of problems, with seeds, in one table.

The problems (planted problems of varied structure, digits, reduced QM9) and the
table are defined in :mod:`tgroup.study`. The table is what the defaults are
chosen by (docs/results.md, Study).

  python -m launch.study --workdir=/tmp/tgroup_runs/study
  python -m launch.study --workdir=/tmp/tgroup_runs/study_quick --quick

Each problem and seed is one pipeline run in WORKDIR/<problem>_s<seed>/ with the
whole contract (report.json, groups, gains); a rerun reuses its gains and
networks, so an interrupted study resumes. WORKDIR/study.json holds the table's
numbers and WORKDIR/study.md the table. ``--quick`` runs two tiny planted
problems with one seed (a smoke run for tests); QM9 needs the ``qm9`` extra.
"""
from __future__ import annotations

import os
import time

from absl import flags

from launch import cli
from tgroup import io
from tgroup.errors import UserError
from tgroup.study import run_one, suite, summarise, table

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing); a "
                               "rerun reuses every finished run's gains and networks.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds of every problem (data "
                           "where the problem generates it, initialisation, batches).")
_PROBLEMS = flags.DEFINE_list("problems", None, "Comma list of problems to run (unset: all of "
                              "the suite: tgroup/study.py).")
_WARMUP = flags.DEFINE_integer("landscape_warmup_steps", 0, "0: landscape at its default, "
                               "random θ_0; N: at the all-task network after N steps (landscape "
                               "and calibrated's landscape signal).")
flags.adopt_module_key_flags(cli)  # --quiet, --compilation_cache in --helpshort
_QUICK = flags.DEFINE_bool("quick", False, "Two tiny planted problems, one seed, few steps: "
                           "a smoke run of the whole suite (tests).")


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise UserError("--workdir is required")
  workdir = cli.check_workdir(_WORKDIR.value)
  os.makedirs(workdir, exist_ok=True)
  try:
    seeds = [int(s) for s in _SEEDS.value]
  except ValueError:
    raise UserError(f"--seeds must be integers, got {_SEEDS.value}") from None
  if _WARMUP.value < 0:
    raise UserError(f"--landscape_warmup_steps must be >= 0, got {_WARMUP.value}")
  if not seeds or min(seeds) < 0:
    raise UserError(f"--seeds must name at least one seed, each >= 0, got {_SEEDS.value}")
  problems = suite(_QUICK.value)
  if _QUICK.value:
    seeds = seeds[:1]
  if _PROBLEMS.value is not None:
    known = {p.name for p in problems}
    unknown = [p for p in _PROBLEMS.value if p not in known]
    if unknown:
      raise UserError(f"unknown problem(s) {unknown}; known: {', '.join(sorted(known))}")
    problems = [p for p in problems if p.name in _PROBLEMS.value]
  quiet = cli.QUIET.value
  reports = {}
  for problem in problems:
    reports[problem.name] = []
    for seed in seeds:
      start = time.perf_counter()
      report = run_one(problem, seed, os.path.join(workdir, f"{problem.name}_s{seed}"),
                       landscape_warmup_steps=_WARMUP.value)
      reports[problem.name].append(report)
      if not quiet:
        print(f"{problem.name} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
  summary = summarise(reports)
  summary["seeds"] = seeds
  summary["descriptions"] = {p.name: p.description for p in problems}
  io.write_json(os.path.join(workdir, "study.json"), summary)
  lines = table(summary)
  io.atomic_write_bytes(os.path.join(workdir, "study.md"), ("\n".join(lines) + "\n").encode())
  print("\n".join(lines))
  if summary["oracle_planted"]:
    print("oracle's groups are the planted ones in: " + ", ".join(
        f"{p} {k}/{len(seeds)}" for p, k in summary["oracle_planted"].items()))


if __name__ == "__main__":
  cli.run(main)
