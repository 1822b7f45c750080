"""launch.study: the suite's quick mode end to end, its table, and its errors."""
import json
import os
import subprocess
import sys

import pytest

from tgroup import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_study(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "launch.study", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)


def test_quick_suite_writes_one_table_with_every_method(tmp_path):
  wd = tmp_path / "study"
  proc = run_study(f"--workdir={wd}", "--quick", "--quiet")
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.load(open(wd / "study.json"))
  problems = [p.name for p in study.suite(quick=True)]
  assert summary["problems"] == problems and summary["seeds"] == [0]
  names = [m if isinstance(m, str) else m.name for m in study.METHODS]
  assert list(summary["methods"]) == names
  for name in names:
    entry = summary["methods"][name]
    assert entry["planted_runs"] == len(problems)  # both quick problems are planted
    if name in ("stl", "mtl_all"):  # their partitions are unique: no regret
      assert entry["mean_regret"] is None
    else:
      assert isinstance(entry["mean_regret"], float), name
  assert summary["methods"]["oracle"]["mean_regret"] == 0.0
  assert summary["methods"]["calibrated"]["networks"] >= 1
  # Each problem's run is a whole pipeline run with its report.
  for p in problems:
    report = json.load(open(wd / f"{p}_s0" / "report.json"))
    assert report["methods"]["stl"]["regret"] is None
    assert report["methods"]["mtl_all"]["regret"] is None
  table = (wd / "study.md").read_text()
  assert table == proc.stdout.split("oracle's groups")[0]
  assert "| principled_marginal |" in table and "| calibrated |" in table


@pytest.mark.parametrize("flag,message", [
    ("--problems=nope", "unknown problem(s) ['nope']"),
    ("--seeds=a", "--seeds must be integers"),
    ("--seeds=-1", "each >= 0"),
])
def test_bad_flags_fail_in_one_line(tmp_path, flag, message):
  proc = run_study(f"--workdir={tmp_path / 'study'}", "--quick", flag, timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr


def test_every_full_problem_fits_the_oracle():
  # The suite scores every method against the oracle: no problem may exceed 8 tasks.
  for problem in study.suite():
    if problem.name == "qm9":
      assert len(study.QM9_TASKS) <= 8
      continue
    assert problem.build(0).num_tasks <= 8, problem.name
