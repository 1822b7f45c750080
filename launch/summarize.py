r"""One Markdown row per finished workdir: groups found, totals, and (with ground truth)
how cleanly the gains separate the planted groups.

  python -m launch.summarize --workdirs=runs/s0,runs/s1 [--method=principled]
  python -m launch.summarize --workdirs=runs/s0 --per_task   # each task under each method
  python -m launch.summarize --workdirs=runs/s0,runs/s1 --cost  # regret and cost per method

Columns: the method's groups match the ground truth; its total test loss next to
STL's and MTL-all's; and ``separation``, the smallest over target tasks j of
(the lowest gain j receives from its own planted group) − (the highest gain j
receives from any other group), read from gains.json. Positive means every
column ranks all same-group sources above all others.
"""
import os

from absl import flags
import numpy as np

from launch import cli
from tgroup import io
from tgroup.errors import UserError
from tgroup.gains import Gains

_WORKDIRS = flags.DEFINE_list("workdirs", [], "Workdirs written by a launcher.")
_METHOD = flags.DEFINE_string("method", "principled", "Method whose groups are summarised.")
_PER_TASK = flags.DEFINE_bool("per_task", False, "Instead: per workdir, one row per task, one "
                              "column per method, each cell the task's test loss / metric on "
                              "the network that serves it.")
_COST = flags.DEFINE_bool("cost", False, "Instead: one row per method over all workdirs: "
                          "mean regret, regret per run, planted groups recovered (with ground "
                          "truth), training runs beyond STL and seconds spent choosing groups.")
_REGRET = flags.DEFINE_bool("regret", False, "Instead: one row per workdir, one column per "
                            "method, each cell its regret against the oracle (runs with "
                            "oracle), marked * where its groups equal the ground truth.")


def separation(gains: Gains, groups) -> float:
  """min over targets j of (min own-group gain onto j) − (max other-group gain onto j).

  Entries never collected (count 0, e.g. the marginal form's diagonal) are left out.
  """
  label = {t: k for k, g in enumerate(groups) for t in g}
  own = np.array([[label[a] == label[b] for b in gains.tasks] for a in gains.tasks])
  seen = np.asarray(gains.counts) > 0
  g = gains.gains
  cols = [j for j in range(len(gains.tasks))
          if (own[:, j] & seen[:, j]).any() and (~own[:, j] & seen[:, j]).any()]
  return float(min(g[own[:, j] & seen[:, j], j].min() - g[~own[:, j] & seen[:, j], j].max()
                   for j in cols))


# What a row reads of each method; a missing one means the report is not a launcher's.
_REPORT_KEYS = ("groups", "total_test_loss", "delta_m")


def read_report(workdir: str) -> dict:
  """``workdir``'s report.json, or a one-line UserError naming the file and line."""
  report, where = io.read_json_located(os.path.join(workdir, "report.json"))
  if not isinstance(report, dict) or not isinstance(report.get("methods"), dict):
    raise UserError(f"{where(('methods',))}: not a launcher's report (no 'methods' object)")
  for name, entry in report["methods"].items():
    missing = [k for k in _REPORT_KEYS if not isinstance(entry, dict) or k not in entry]
    if missing:
      raise UserError(f"{where(('methods', name))}: method {name!r} lacks "
                      f"{', '.join(missing)}; is the run finished?")
  return report


def _number(x, spec: str) -> str:
  return "n/a" if x is None else format(x, spec)


def row(workdir: str, method: str) -> str:
  report = read_report(workdir)
  methods = report["methods"]
  if method not in methods:
    raise UserError(f"{workdir}: method {method!r} not in report ({', '.join(methods)})")
  entry = methods[method]
  total = lambda name: (_number(methods[name]["total_test_loss"], ".4f") if name in methods
                        else "n/a")
  truth = report.get("ground_truth_groups")
  sep = match = "n/a"
  if truth is not None:
    match = str(sorted(map(sorted, entry["groups"])) == sorted(map(sorted, truth)))
    gains_path = os.path.join(workdir, f"gains_{entry.get('measure', method)}.json")
    if os.path.exists(gains_path):
      sep = f"{separation(Gains.load(gains_path), truth):+.4f}"
  groups = " ".join("{" + ",".join(g) + "}" for g in entry["groups"])
  return (f"| {workdir} | {groups} | {match} | {total(method)} | {total('stl')} | "
          f"{total('mtl_all')} | {_number(entry['delta_m'], '+.2f')} | {sep} |")


def regret_rows(workdirs: list[str]) -> list[str]:
  """A Markdown table of every method's regret, one row per workdir."""
  reports = [read_report(wd) for wd in workdirs]
  methods = list(dict.fromkeys(m for r in reports for m in r["methods"]))
  lines = ["| workdir | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
  for wd, r in zip(workdirs, reports):
    cells = []
    for name in methods:
      e = r["methods"].get(name)
      if e is None or e.get("regret") is None:
        cells.append("n/a")
        continue
      star = "*" if e.get("matches_ground_truth") else ""
      cells.append(f"{e['regret']:+.4f}{star}")
    lines.append(f"| {wd} | " + " | ".join(cells) + " |")
  return lines


def cost_rows(workdirs: list[str]) -> list[str]:
  """A Markdown table, one row per method: mean regret over the runs, how often its groups
  were the planted ones, and what choosing them cost (training runs beyond STL, seconds)."""
  reports = [read_report(wd) for wd in workdirs]
  methods = list(dict.fromkeys(m for r in reports for m in r["methods"]))
  truth = any("ground_truth_groups" in r for r in reports)
  lines = ["| method | mean regret | regret per run |" + (" planted |" if truth else "")
           + " networks beyond STL | seconds (mean) |",
           "|---|---|---|" + ("---|" if truth else "") + "---|---|"]
  for name in methods:
    entries = [r["methods"][name] for r in reports if name in r["methods"]]
    regrets = [e.get("regret") for e in entries]
    known = [x for x in regrets if x is not None]
    mean = f"{np.mean(known):+.4f}" if known else "n/a"
    each = " ".join("n/a" if x is None else f"{x:+.3f}" for x in regrets)
    row = f"| {name} | {mean} | {each} |"
    if truth:
      row += f" {sum(bool(e.get('matches_ground_truth')) for e in entries)}/{len(entries)} |"
    costs = [e.get("cost") for e in entries]
    networks = sorted({c["networks"] for c in costs if c})
    seconds = [c["seconds"] for c in costs if c]
    row += (f" {'/'.join(map(str, networks)) or 'n/a'} |"
            f" {np.mean(seconds):.1f} |" if seconds else " n/a | n/a |")
    lines.append(row)
  return lines


def per_task_rows(workdir: str) -> list[str]:
  """A Markdown table of every task's test loss / metric under every method of a run."""
  report = read_report(workdir)
  methods = report["methods"]
  tasks = list(report.get("tasks") or next(iter(methods.values()))["per_task"])
  head = f"| task: test loss / {report.get('metric', 'metric')} | "
  lines = [head + " | ".join(methods) + " |",
           "|---|" + "---|" * len(methods)]
  for task in tasks:
    cells = []
    for entry in methods.values():
      v = (entry.get("per_task") or {}).get(task)
      cells.append("n/a" if v is None else
                   f"{_number(v.get('test_loss'), '.4f')} / {_number(v.get('test_metric'), '.4f')}")
    lines.append(f"| {task} | " + " | ".join(cells) + " |")
  return lines


def main(argv):
  del argv
  if not _WORKDIRS.value:
    raise UserError("--workdirs needs at least one directory")
  if not all(_WORKDIRS.value):
    raise UserError(f"--workdirs has an empty entry: {','.join(_WORKDIRS.value)!r}")
  if _REGRET.value:
    print("\n".join(regret_rows(_WORKDIRS.value)))
    return
  if _COST.value:
    print("\n".join(cost_rows(_WORKDIRS.value)))
    return
  if _PER_TASK.value:
    tables = [per_task_rows(wd) for wd in _WORKDIRS.value]  # every error before any output
    print("\n\n".join(f"{wd}\n\n" + "\n".join(t) for wd, t in zip(_WORKDIRS.value, tables)))
    return
  rows = [row(wd, _METHOD.value) for wd in _WORKDIRS.value]  # every error before any output
  print(f"| workdir | {_METHOD.value} groups | = ground truth | total test loss | STL | "
        "MTL-all | Δm (%) | separation |")
  print("|---|---|---|---|---|---|---|---|")
  print("\n".join(rows))


if __name__ == "__main__":
  cli.run(main)
