"""The synthetic launcher end to end with tiny flags, and its error contract."""
import json
import os
import subprocess
import sys

import pytest

from conftest import one_line_error
from expected_gains import off_diagonal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num_clusters=2", "--tasks_per_cluster=2", "--max_steps=30", "--quiet"]


def launch(*args, module="launch.synthetic"):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def check_groups(groups, tasks):
  assert groups and all(g for g in groups)
  assert set(t for g in groups for t in g) == set(tasks)
  assert all(t in tasks for g in groups for t in g)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """One tiny default run, shared by the tests that only read its files."""
  wd = str(tmp_path_factory.mktemp("synthetic") / "run")
  proc = launch(f"--workdir={wd}", *TINY)
  assert proc.returncode == 0, proc.stderr
  return wd


def test_writes_the_contract(tiny_run):
  wd = tiny_run
  gains = json.load(open(os.path.join(wd, "gains.json")))
  tasks = gains["tasks"]
  assert tasks == ["c0_t0", "c0_t1", "c1_t0", "c1_t1"]
  # principled runs in its default, marginal form.
  assert gains["measure"] == "principled_marginal"
  assert len(gains["gains"]) == 4 and all(len(r) == 4 for r in gains["gains"])
  assert gains["counts"] == off_diagonal(4, 30)
  groups = json.load(open(os.path.join(wd, "groups.json")))
  check_groups(groups["groups"], tasks)
  assert groups["status"] in ("optimal", "feasible") and len(groups["groups"]) == 2
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "synthetic"
  assert report["ground_truth_groups"] == [["c0_t0", "c0_t1"], ["c1_t0", "c1_t1"]]
  assert set(report["methods"]) == {"principled", "tag", "stl", "mtl_all"}
  for name, entry in report["methods"].items():
    check_groups(entry["groups"], tasks)
    assert set(entry["per_task"]) == set(tasks)
    assert abs(entry["total_test_loss"] - sum(v["test_loss"] for v in entry["per_task"].values())
               ) < 1e-9
    assert set(entry["seconds"]) == {"collect", "group", "train"}
    assert "delta_m" in entry and "regret" in entry
  assert report["methods"]["stl"]["delta_m"] == 0.0
  assert report["methods"]["stl"]["groups"] == [[t] for t in tasks]
  for png in ("gains.png", "results.png"):
    assert os.path.getsize(os.path.join(wd, png)) > 1000


def test_rerun_reuses_saved_results(tiny_run):
  wd = tiny_run
  first = json.load(open(os.path.join(wd, "report.json")))
  files = ["gains_principled_marginal.json", "gains_tag.json"] + [
      os.path.join(d, f) for d, _, fs in os.walk(os.path.join(wd, "networks")) for f in fs]
  stamps = {f: os.path.getmtime(os.path.join(wd, f)) for f in files}
  assert len(stamps) > 4
  assert launch(f"--workdir={wd}", *TINY).returncode == 0
  second = json.load(open(os.path.join(wd, "report.json")))
  assert stamps == {f: os.path.getmtime(os.path.join(wd, f)) for f in stamps}
  # Times differ between runs: "seconds", and the seconds of "cost" (its networks do not).
  drop_time = lambda r: {k: {f: (v["networks"] if f == "cost" else v) for f, v in e.items()
                             if f != "seconds"} for k, e in r["methods"].items()}
  assert drop_time(first) == drop_time(second)


def test_collect_steps_sets_the_collection_run_only(tmp_path):
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", *TINY, "--methods=principled", "--collect_steps=12")
  assert proc.returncode == 0, proc.stderr
  gains = json.load(open(os.path.join(wd, "gains.json")))
  assert gains["settings"]["steps"] == 12 and gains["counts"] == off_diagonal(4, 12)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["settings"]["train_steps"] == 30  # the group networks keep --max_steps


def test_infeasible_constraints_leave_earlier_results_intact(tiny_run):
  wd = tiny_run
  before = {f: open(os.path.join(wd, f)).read() for f in ("groups.json", "report.json")}
  proc = launch(f"--workdir={wd}", *TINY, "--max_group_size=1")
  assert proc.returncode == 2
  assert "max_group_size" in proc.stderr and "Traceback" not in proc.stderr
  assert before == {f: open(os.path.join(wd, f)).read() for f in before}


@pytest.mark.parametrize("flag,message", [
    ("--methods=principled,nope", "unknown method(s) ['nope']"),
    ("--num_groups=7", "num_groups"),
    ("--must_link=c0_t0", "task_a:task_b"),
    ("--must_link=c0_t0:zzz", "unknown task 'zzz'"),
    ("--rho=-1", "--rho"),
    ("--sample_tasks=9", "sample_tasks"),
    ("--num_groups=0 --principled_form=self_pair", "principled_form=marginal"),
    ("--eval_seeds=abc", "eval_seeds"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, flag, message):
  wd = tmp_path / "run"
  proc = launch(f"--workdir={wd}", *TINY, *flag.split())
  assert message in one_line_error(proc), proc.stderr


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")
  for flag in ("workdir", "methods", "num_groups", "max_group_size", "seed", "max_steps",
               "quiet", "num_clusters", "tasks_per_cluster", "collect_every", "sample_tasks",
               "strategy", "principled_form"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag
