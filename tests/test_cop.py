"""The routing benchmark: its TaskSet (data, losses, scores, references) and its launcher."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tgroup import train
from tgroup.benchmarks.cop import benchmark
from tgroup.benchmarks.cop import reference
from tgroup.benchmarks.cop.instances import Task
from tgroup.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(num_val=2, num_test=3, reference_seconds_per_node=0.005, dim=16, heads=2, ff=16,
             layers=1, starts=3, batch_size=4, train_steps=5, num_landscape=4)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  return benchmark.cop(("CVRP6", "KP6"), cache_dir=str(tmp_path_factory.mktemp("cop")), **SMALL)


def test_taskset_losses_and_gaps(small):
  small.check()
  params = small.init_params(jax.random.key(0))
  train_losses = jax.jit(small.task_losses)(params, next(small.train.train_batches(4, seed=0)))
  assert train_losses.shape == (2,) and np.isfinite(np.asarray(train_losses)).all()
  test_loss, gap = train.evaluate(small, params, small.test)
  # On greedy (labelled) rows the loss is 1 + gap: the ratio to the reference.
  np.testing.assert_allclose(test_loss, 1 + gap / 100, rtol=1e-5)
  # KP's reference is exact, so no solution beats it; an untrained solver is worse.
  assert gap[1] >= 0 and np.all(gap > -1e-3) and gap.mean() > 1
  score = np.asarray(jax.jit(small.lookahead_losses)(params))
  assert score.shape == (2,) and np.all(score > 0)


@pytest.mark.slow  # compiles a collection step over four rollouts (~45 s)
def test_gains_are_scored_on_the_validation_objective(small):
  from tgroup.gains import CollectConfig, collect_gains  # pylint: disable=g-import-not-at-top
  gains = collect_gains(small, CollectConfig(measures=("principled", "tag"), steps=2,
                                             quiet=True))
  for name in ("principled", "tag"):
    assert np.isfinite(gains[name].gains).all() and (gains[name].counts == 2).all()


def test_training_shortens_greedy_tours(tmp_path):
  ts = benchmark.cop(("TSP10",), cache_dir=str(tmp_path),
                     **{**SMALL, "num_val": 8, "dim": 32, "heads": 4, "ff": 32, "starts": 4,
                        "batch_size": 16, "learning_rate": 3e-3})
  score = jax.jit(ts.lookahead_losses)
  before = train.init_state(ts, jax.random.key(0))
  after = train.train_networks(ts, np.ones((1, 1)), jax.random.key(0)[None], steps=80,
                               data_seed=0, quiet=True)
  start = float(score(before.params)[0])
  end = float(score(jax.tree.map(lambda x: x[0], after.params))[0])
  # Measured: 4.28 -> 3.82 (the references average 3.12).
  assert end < 0.93 * start, (start, end)


def test_training_stream_resumes_and_follows_the_seed():
  ds = benchmark.GeneratedInstances((Task("cvrp", 5), Task("op", 4)))
  whole = [b for b, _ in zip(ds.train_batches(3, seed=1), range(4))]
  tail = [b for b, _ in zip(ds.train_batches(3, seed=1, start=2), range(2))]
  for a, b in zip(whole[2:], tail):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  other = next(ds.train_batches(3, seed=2))
  assert not np.array_equal(other.inputs["CVRP5"]["locs"], whole[0].inputs["CVRP5"]["locs"])
  assert not np.array_equal(whole[0].inputs["key"], whole[1].inputs["key"])


def test_references_are_read_back_from_the_cache(tmp_path, monkeypatch):
  first = benchmark.cop(("TSP6", "OP6"), cache_dir=str(tmp_path), **SMALL)

  def refuse(*args, **kwargs):
    raise AssertionError("references were solved again")
  monkeypatch.setattr(reference, "solve_batch", refuse)
  again = benchmark.cop(("TSP6", "OP6"), cache_dir=str(tmp_path), **SMALL)
  np.testing.assert_array_equal(first.test.labels, again.test.labels)
  np.testing.assert_array_equal(first.val.labels, again.val.labels)
  assert first.definition == again.definition
  # Other instances are other references: the cache is keyed by what it holds.
  with pytest.raises(AssertionError, match="solved again"):
    benchmark.cop(("TSP6", "OP6"), cache_dir=str(tmp_path), **{**SMALL, "instance_seed": 1})


def test_adding_a_task_keeps_the_others_instances(tmp_path):
  one = benchmark.fixed_instances((Task("tsp", 6),), "test", 3, seed=0)
  two = benchmark.fixed_instances((Task("op", 6), Task("tsp", 6)), "test", 3, seed=0)
  np.testing.assert_array_equal(one["TSP6"]["locs"], two["TSP6"]["locs"])
  val = benchmark.fixed_instances((Task("tsp", 6),), "val", 3, seed=0)
  assert not np.array_equal(one["TSP6"]["locs"], val["TSP6"]["locs"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(tasks=("TSP6", "VRP6")), "unknown task 'VRP6'"),
    (dict(tasks=("TSP6", "tsp6")), "tasks must be distinct"),
    (dict(starts=7), "--starts=7 exceeds the 6 nodes of TSP6"),
    (dict(dim=10, heads=4), "--dim=10 must be a multiple of --heads=4"),
    (dict(reference_seconds_per_node=0.0), "must be > 0"),
    (dict(batch_size=0), "--batch_size must be >= 1"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, match):
  arguments = {"tasks": ("TSP6", "OP6"), **SMALL, **kwargs}
  with pytest.raises(UserError, match=match):
    benchmark.cop(cache_dir=str(tmp_path), **arguments)


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.cop", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


def test_bad_task_flag_exits_2_with_one_line(tmp_path):
  proc = launch(f"--workdir={tmp_path}", "--tasks=TSP20,VRP20", "--quiet")
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and "unknown task 'VRP20'" in lines[0], proc.stderr


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")
  for flag in ("workdir", "methods", "num_groups", "seed", "max_steps", "quiet", "tasks",
               "num_val", "num_test", "instance_seed", "reference_seconds_per_node", "dim",
               "heads", "ff", "layers", "starts", "batch_size", "learning_rate", "train_steps"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag


@pytest.mark.slow  # compiles every program of a run (minutes on 2 cores)
def test_launcher_writes_the_contract(tmp_path):
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", "--tasks=TSP6,CVRP6,OP6", "--num_val=2", "--num_test=3",
                "--reference_seconds_per_node=0.005", "--dim=16", "--heads=2", "--ff=16",
                "--layers=1", "--starts=3", "--batch_size=4", "--train_steps=6",
                "--methods=principled,tag,stl,mtl_all,landscape", "--num_groups=2", "--quiet")
  assert proc.returncode == 0, proc.stderr[-3000:]
  tasks = ["TSP6", "CVRP6", "OP6"]
  gains = json.load(open(os.path.join(wd, "gains.json")))
  assert gains["tasks"] == tasks and np.shape(gains["gains"]) == (3, 3)
  # Collected at steps 0 and 5 (every 5th step by default).
  assert gains["counts"] == [[2] * 3] * 3
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "cop" and report["metric"] == "gap_pct"
  assert set(report["methods"]) == {"principled", "tag", "stl", "mtl_all", "landscape"}
  for entry in report["methods"].values():
    assert set(entry["per_task"]) == set(tasks)
    for v in entry["per_task"].values():
      assert v["test_loss"] == pytest.approx(1 + v["test_metric"] / 100, rel=1e-5)
  for name in ("reference_test_TSP6_0.npz", "reference_val_OP6_0.npz", "gains.png",
               "results.png"):
    assert os.path.exists(os.path.join(wd, name)), name
