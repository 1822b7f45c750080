"""The digits benchmark: its TaskSet, its task-name errors and its launcher end to end."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import one_line_error
from tgroup.benchmarks import digits
from tgroup.errors import UserError
from expected_gains import off_diagonal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["gt4", "gt5", "even", "loop"]
TINY = [f"--tasks={','.join(TASKS)}", "--max_steps=20", "--quiet"]


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.digits", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def taskset():
  return digits.digits()


def test_taskset_is_well_formed(taskset):
  assert taskset.tasks == digits.DEFAULT_TASKS
  m = len(digits.DEFAULT_TASKS)
  for split in (taskset.train, taskset.val, taskset.test):
    assert split.inputs.shape == (len(split), 64) and split.inputs.dtype == np.float32
    assert split.labels.shape == (len(split), m) and set(np.unique(split.labels)) == {0, 1}
    assert 0.0 <= split.inputs.min() and split.inputs.max() <= 1.0
    # Every attribute holds for 30-60 % of the images: no task is nearly constant.
    assert (0.3 < split.labels.mean(0)).all() and (split.labels.mean(0) < 0.65).all()
  assert len(taskset.train) == 300
  assert abs(len(taskset.val) - 0.2 * digits.NUM_IMAGES) < 10
  assert abs(len(taskset.test) - 0.2 * digits.NUM_IMAGES) < 10
  params = taskset.init_params(jax.random.key(0))
  batch = next(taskset.train.train_batches(taskset.batch_size, seed=0))
  assert taskset.task_losses(params, batch).shape == (m,)


def test_labels_are_the_attributes_of_the_digits():
  images, digit = digits.load_images()
  assert images.shape == (digits.NUM_IMAGES, 64) and np.bincount(digit).min() >= 170
  labels = digits.attribute_labels(digit, ["even", "gt4", "prime", "is7"])
  np.testing.assert_array_equal(labels[:, 0], digit % 2 == 0)
  np.testing.assert_array_equal(labels[:, 1], digit > 4)
  np.testing.assert_array_equal(labels[:, 2], np.isin(digit, [2, 3, 5, 7]))
  np.testing.assert_array_equal(labels[:, 3], digit == 7)


def test_split_is_stratified_disjoint_covering_and_nested():
  _, digit = digits.load_images()
  full = digits.max_train()
  train, val, test = digits.stratified_split(digit, full)
  everything = np.concatenate([train, val, test])
  assert len(everything) == len(set(everything.tolist())) == digits.NUM_IMAGES
  for part, frac in ((val, 0.2), (test, 0.2), (train, 0.6)):
    counts = np.bincount(digit[part], minlength=10)
    expected = frac * np.bincount(digit)
    assert (np.abs(counts - expected) <= 1.5).all(), counts
  small, val2, test2 = digits.stratified_split(digit, 300)
  assert set(small.tolist()) <= set(train.tolist())
  np.testing.assert_array_equal(val, val2)
  np.testing.assert_array_equal(test, test2)
  assert np.ptp(np.bincount(digit[small], minlength=10)) <= 1
  with pytest.raises(UserError, match=f"between 1 and {full}"):
    digits.stratified_split(digit, full + 1)


def test_unknown_task_names_the_valid_ones():
  with pytest.raises(UserError) as err:
    digits.digits(["even", "odd"])
  message = str(err.value)
  assert "['odd']" in message and all(t in message for t in digits.ATTRIBUTES)
  with pytest.raises(UserError, match="repeat"):
    digits.check_tasks(["even", "even"])
  with pytest.raises(UserError, match="batch size"):
    digits.digits(num_train=50)


def test_launcher_writes_the_contract_with_the_oracle(tmp_path):
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", *TINY, "--methods=principled,oracle,stl,mtl_all")
  assert proc.returncode == 0, proc.stderr
  gains = json.load(open(os.path.join(wd, "gains.json")))
  # principled runs in its default, marginal form.
  assert gains["tasks"] == TASKS and gains["measure"] == "principled_marginal"
  assert np.shape(gains["gains"]) == (4, 4) and gains["counts"] == off_diagonal(4, 20)
  groups = json.load(open(os.path.join(wd, "groups.json")))
  assert len(groups["groups"]) == 3  # the default number of groups
  assert sorted(t for g in groups["groups"] for t in g) == sorted(TASKS)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "digits" and "ground_truth_groups" not in report
  assert set(report["methods"]) == {"principled", "oracle", "stl", "mtl_all"}
  table = json.load(open(os.path.join(wd, "oracle", "table.json")))
  assert len(table["networks"]) == 2 ** 4 - 1
  for entry in report["methods"].values():
    assert set(entry["per_task"]) == set(TASKS)
    assert entry["total_test_error"] == pytest.approx(
        sum(v["test_metric"] for v in entry["per_task"].values()))
  for name, entry in report["methods"].items():  # STL and MTL-all: nothing to compare with
    assert (entry["regret"] is None) == (name in ("stl", "mtl_all")), name
    assert entry["regret"] is None or np.isfinite(entry["regret"])
  assert report["methods"]["oracle"]["regret"] == 0.0
  for png in ("gains.png", "results.png"):
    assert os.path.getsize(os.path.join(wd, png)) > 1000


@pytest.mark.parametrize("flag,message", [
    ("--tasks=even,odd", "valid tasks: gt2"),
    ("--num_train=5000", "num_train must be between 1 and"),
    ("--width=0", "--width"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, flag, message):
  proc = launch(f"--workdir={tmp_path / 'run'}", *TINY, flag)
  assert message in one_line_error(proc), proc.stderr


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")
  for flag in ("workdir", "methods", "num_groups", "seed", "max_steps", "quiet", "tasks",
               "num_train", "width", "depth", "train_steps"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag
