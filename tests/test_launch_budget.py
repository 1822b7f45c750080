"""Budgets and the budget sweep through the launchers (synthetic and launch.group)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num_clusters=2", "--tasks_per_cluster=2", "--max_steps=30", "--quiet"]


def launch(*args, module="launch.synthetic"):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def test_sweep_writes_a_monotone_frontier_with_trained_points(tmp_path):
  wd = tmp_path / "run"
  proc = launch(f"--workdir={wd}", *TINY, "--methods=principled,oracle,stl,mtl_all",
                "--budget_sweep=5", "--budget=1300")
  assert proc.returncode == 0, proc.stderr
  frontier = json.load(open(wd / "frontier.json"))
  assert frontier["cost_model"] == "params" and frontier["method"] == "principled"
  points = frontier["points"]
  assert len(points) == 5
  assert all(p["cost"] <= p["budget"] + 1e-6 for p in points)
  predicted = [p["predicted"] for p in points]
  assert all(a <= b + 1e-12 for a, b in zip(predicted, predicted[1:]))
  assert all(p["test_total"] is not None and np.isfinite(p["test_total"]) for p in points)
  # The ends: one network for all (cheapest) and, for self-pair gains with the
  # number of groups free, every task alone.
  assert len(points[0]["groups"]) == 1 and points[0]["cost"] == frontier["mtl_all"]["cost"]
  report = json.load(open(wd / "report.json"))
  assert points[0]["test_total"] == pytest.approx(report["methods"]["mtl_all"]["total_test_loss"])
  assert os.path.getsize(wd / "frontier.png") > 1000
  # The budget also limits the groupings themselves, the oracle's included.
  for method in ("principled", "oracle"):
    groups = json.load(open(wd / f"groups_{method}.json"))
    assert groups["total_cost"] <= 1300 and len(groups["network_costs"]) == len(groups["groups"])
  assert report["settings"]["resources"]["budget"] == 1300


def test_a_budget_below_every_grouping_names_the_budget(tmp_path):
  proc = launch(f"--workdir={tmp_path / 'run'}", *TINY, "--budget=100")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: no grouping satisfies")
  assert "budget=100 (params)" in lines[0] and "relaxing" in lines[0] and "budget" in lines[0]
  assert not (tmp_path / "run" / "report.json").exists()


def write_gains(path, tasks, gains):
  m = len(tasks)
  path.write_text(json.dumps({"tasks": tasks, "measure": "principled_marginal",
                              "gains": gains, "counts": [[1] * m] * m, "settings": {}}))


def test_group_with_a_costs_file_half_size_and_sweep(tmp_path):
  gains, costs = tmp_path / "gains.json", tmp_path / "costs.json"
  write_gains(gains, ["a", "b", "c"], [[0, 1, -1], [1, 0, -1], [-1, -1, 0]])
  costs.write_text(json.dumps({"base": 2, "per_task": {"a": 1, "b": 1, "c": 1},
                               "half_size": {"a": 1, "b": 1, "c": 1}}))
  out = tmp_path / "groups.json"
  proc = launch(f"--gains={gains}", "--objective=marginal", f"--costs_file={costs}",
                "--budget=5", "--allow_half_size", f"--output={out}", module="launch.group")
  assert proc.returncode == 0, proc.stderr
  groups = json.load(open(out))
  assert groups["groups"] == [["a", "b"], ["c"]]
  assert groups["network_costs"] == [4.0, 1.0] and groups["half_size"] == [False, True]
  sweep = tmp_path / "frontier.json"
  proc = launch(f"--gains={gains}", "--objective=marginal", f"--costs_file={costs}",
                "--budget_sweep=3", f"--output={sweep}", module="launch.group")
  assert proc.returncode == 0, proc.stderr
  points = json.load(open(sweep))["points"]
  assert [p["budget"] for p in points] == [5.0, 6.0, 7.0]  # {a,b,c} .. {a,b}{c}: 4 + 3
  assert points[0]["groups"] == [["a", "b", "c"]] and points[-1]["groups"] == [["a", "b"], ["c"]]


def test_group_needs_costs_it_can_get(tmp_path):
  gains = tmp_path / "gains.json"
  write_gains(gains, ["a", "b"], [[0, 1], [1, 0]])
  proc = launch(f"--gains={gains}", "--objective=marginal", "--budget=3", module="launch.group")
  assert proc.returncode == 2
  assert "--cost_model=params is measured on a model" in proc.stderr


def test_half_size_networks_are_trained_as_such(tmp_path):
  wd = tmp_path / "run"
  # Self-pair gains with the number of groups free choose singletons; 4 half-size
  # ones (217 parameters each at 16 wide) fit a budget that 4 full ones (561) do not.
  proc = launch(f"--workdir={wd}", *TINY, "--methods=principled,stl,mtl_all",
                "--principled_form=self_pair", "--num_groups=0", "--max_groups=4",
                "--allow_half_size", "--budget=1000")
  assert proc.returncode == 0, proc.stderr
  report = json.load(open(wd / "report.json"))
  entry = report["methods"]["principled"]
  assert entry["half_size"] == [True] * 4 and entry["network_costs"] == [217.0] * 4
  # Their results are the half-size networks', not STL's full-size ones.
  stl = report["methods"]["stl"]
  assert entry["groups"] == stl["groups"]
  assert entry["total_test_loss"] != stl["total_test_loss"]
  identities = [json.load(open(wd / "networks" / d / "identity.json"))
                for d in os.listdir(wd / "networks")]
  assert sorted(i.get("half_size", False) for i in identities) == [False, True]
