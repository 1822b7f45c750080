"""launch.select end to end: the JSON it writes, its error contract, no JAX."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import brute_force_grouping as bf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join("tests", "data", "taskonomy_network_tables")
VAL = os.path.join(DATA, "results.tsv")
TEST = os.path.join(DATA, "results_test.tsv")
FLAGS = ("table", "test_table", "budget", "approximation", "output", "time_limit_s", "quiet")


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.select", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def read_tsv(path):
  """Standley's format from its definition: (networks as task sets, costs, losses).

  Row 1: a half-size network per task (cost 0.5) serving only that column;
  every later row: a full-size network (cost 1) serving its non-empty cells.
  """
  with open(path) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
  m = len(rows[0])
  networks = [{t} for t in range(m)] + [{t for t, c in enumerate(r) if c.strip()}
                                         for r in rows[1:]]
  costs = np.array([0.5] * m + [1.0] * (len(rows) - 1))
  losses = np.full((len(networks), m), np.nan)
  for t in range(m):
    losses[t, t] = float(rows[0][t])
  for n, row in enumerate(rows[1:], start=m):
    for t in networks[n]:
      losses[n, t] = float(row[t])
  return networks, costs, losses


def hoa_predictions(networks, losses):
  """Standley's higher-order approximation from its definition: on a network
  of 3+ tasks, task t's loss is the mean of t's losses on the pair networks
  {t, u} over the network's other tasks u."""
  pairs = {frozenset(s): n for n, s in enumerate(networks) if len(s) == 2}
  predicted = losses.copy()
  for n, tasks in enumerate(networks):
    if len(tasks) >= 3:
      for t in tasks:
        predicted[n, t] = np.mean([losses[pairs[frozenset({t, u})], t] for u in tasks - {t}])
  return predicted


def test_writes_the_selection(tmp_path):
  out = tmp_path / "sub" / "selection.json"
  proc = launch(f"--table={VAL}", f"--test_table={TEST}", "--budget=3",
                "--approximation=hoa", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(out.read_text())
  assert set(result) == {"budget", "networks", "total_loss", "test_total_loss",
                         "approximation", "predicted_total_loss", "assignment", "status",
                         "table", "test_table"}
  assert (result["budget"], result["approximation"], result["status"]) == (3, "hoa", "optimal")
  assert (result["table"], result["test_table"]) == (VAL, TEST)
  networks, costs, val = read_tsv(os.path.join(ROOT, VAL))
  _, _, test = read_tsv(os.path.join(ROOT, TEST))
  predicted = hoa_predictions(networks, val)
  # The launcher's networks as table rows (tasks and cost identify a row here),
  # ordered by cost, then tasks; and the row serving each task.
  assert result["networks"] == sorted(result["networks"],
                                      key=lambda n: (n["cost"], n["tasks"]))
  chosen = [next(n for n, tasks in enumerate(networks)
                 if tasks == set(net["tasks"]) and costs[n] == net["cost"])
            for net in result["networks"]]
  serving = [chosen[k] for k in result["assignment"]]
  assert all(t in networks[n] for t, n in enumerate(serving))
  spent = math.fsum(costs[chosen])
  assert spent <= 3
  # Optimal on the predictions: no selection costing at most as much (every
  # per-task choice of serving network, each network paid once) predicts less.
  total, cost = bf.network_choices(predicted, costs)
  best = total[cost <= spent + 1e-9].min()
  assert best == pytest.approx(total[cost <= 3 + 1e-9].min(), abs=1e-12)
  assert result["predicted_total_loss"] == pytest.approx(best, abs=1e-12)
  assert result["predicted_total_loss"] == pytest.approx(
      math.fsum(predicted[n, t] for t, n in enumerate(serving)), abs=1e-12)
  # Re-scored on the real losses: each task's best chosen network on --table,
  # the serving network on --test_table.
  m = val.shape[1]
  assert result["total_loss"] == pytest.approx(
      math.fsum(np.nanmin(val[chosen, t]) for t in range(m)), abs=1e-12)
  assert result["test_total_loss"] == pytest.approx(
      math.fsum(test[n, t] for t, n in enumerate(serving)), abs=1e-12)
  # The summary names every chosen network and the totals.
  for network in result["networks"]:
    assert "{" + ", ".join(map(str, network["tasks"])) + "}" in proc.stdout
  assert f"total loss {result['total_loss']:.5f}" in proc.stdout
  assert f"test total loss {result['test_total_loss']:.5f}" in proc.stdout
  assert f"wrote {out}" in proc.stdout


def test_quiet_prints_the_json_without_output():
  proc = launch(f"--table={VAL}", "--budget=1", "--quiet")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  assert result["networks"] == [{"tasks": [0, 1, 2, 3, 4], "cost": 1.0}]
  assert result["test_total_loss"] is None


def bad_file(tmp_path):
  path = tmp_path / "bad.tsv"
  path.write_text("0.1\t0.2\n0.3\tx\n")
  return str(path)


@pytest.mark.parametrize("args, message", [
    (["--budget=2"], "--table is required"),
    ([f"--table={VAL}"], "--budget is required"),
    ([f"--table={VAL}", "--budget=0"], "--budget must be > 0"),
    ([f"--table={VAL}", "--budget=two"], "flag --budget=two"),
    ([f"--table={VAL}", "--budget=2", "--approximation=pairs"], "flag --approximation"),
    ([f"--table={VAL}", "--budget=0.4"], "budget 0.4 cannot buy networks serving all 5 "
     "tasks; the cheapest that do cost 1"),
    (["--table=no_such.tsv", "--budget=2"], "no_such.tsv: no such file"),
    ([bad_file, "--budget=2"], "bad.tsv:2: column 2 (task 1): 'x' is not a number"),
    ([f"--table={VAL}", f"--test_table={os.path.join(DATA, 'results_alt_20.tsv')}",
      "--budget=2"], "does not match"),
    ([f"--table={os.path.join(DATA, 'results_alt_20.tsv')}", "--budget=2",
      "--approximation=hoa"], "pair network of tasks {1, 2}"),
    ([f"--table={VAL}", "--budget=2", "stray"], "unexpected arguments"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, args, message):
  args = [f"--table={a(tmp_path)}" if callable(a) else a for a in args]
  proc = launch(*args)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  assert message in lines[0]
  assert "Traceback" not in proc.stderr and not proc.stdout


def test_an_error_leaves_earlier_output_intact(tmp_path):
  out = tmp_path / "selection.json"
  assert launch(f"--table={VAL}", "--budget=2", f"--output={out}").returncode == 0
  before = out.read_bytes()
  assert launch(f"--table={VAL}", "--budget=0.4", f"--output={out}").returncode == 2
  assert out.read_bytes() == before
  assert os.listdir(tmp_path) == ["selection.json"]


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")  # absl's help exits with status 1
  assert "Traceback" not in proc.stderr
  for name in FLAGS:
    assert f"--{name}" in proc.stdout or f"--[no]{name}" in proc.stdout, name
  assert "python -m launch.select" in proc.stdout


def test_does_not_import_jax():
  probe = "import launch.select, sys; assert 'jax' not in sys.modules, 'jax imported'"
  proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
