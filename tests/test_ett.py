"""The ETT benchmark: its CSV reader and generator, the standard split, and its launcher."""
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import one_line_error
from tgroup.benchmarks import ett
from tgroup.errors import UserError
from expected_gains import off_diagonal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--variant=h", "--window_stride=8", "--width=16", "--max_steps=20", "--quiet"]


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.ett", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def hourly_csv(tmp_path_factory):
  """A full-length generated ETTh file (20 months, 14,400 rows)."""
  return ett.generate_csv(str(tmp_path_factory.mktemp("ett") / "etth.csv"), "h", seed=0)


def write(path, header, rows):
  with open(path, "w") as f:
    f.write(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
  return str(path)


def good_rows(n, start_hour=0):
  return [[f"2016-07-{1 + (start_hour + k) // 24:02d} {(start_hour + k) % 24:02d}:00:00",
           *[round(0.1 * k + c, 3) for c in range(7)]] for k in range(n)]


def test_generated_file_round_trips_and_is_deterministic(tmp_path, hourly_csv):
  dates, values = ett.read_csv(hourly_csv)
  assert values.shape == (14400, 7) and np.isfinite(values).all()
  assert dates[0] == "2016-07-01 00:00:00" and dates[-1] == "2018-02-20 23:00:00"
  with open(hourly_csv) as f:
    assert f.readline().strip() == "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT"
  again = ett.generate_csv(str(tmp_path / "again.csv"), "h", seed=0)
  other = ett.generate_csv(str(tmp_path / "other.csv"), "h", seed=1)
  assert ett.file_digest(again) == ett.file_digest(hourly_csv) != ett.file_digest(other)
  # The 15-minute variant: 57,600 rows a quarter-hour apart, the same kind of series.
  m_dates, m_values = ett.read_csv(ett.generate_csv(str(tmp_path / "ettm.csv"), "m"))
  assert m_values.shape == (57600, 7) and m_dates[1] == "2016-07-01 00:15:00"
  # The planted couplings: loads of a family move together, across families much less.
  corr = np.corrcoef(values.T)
  col = {c: k for k, c in enumerate(ett.COLUMNS)}
  within = [corr[col[a], col[b]] for a, b in (("HUFL", "MUFL"), ("HUFL", "LUFL"),
                                              ("HULL", "MULL"), ("HULL", "LULL"))]
  across = [abs(corr[col[a], col[b]]) for a in ("HUFL", "MUFL", "LUFL")
            for b in ("HULL", "MULL", "LULL")]
  assert min(within) > 0.5 and max(across) < 0.3, (within, across)


@pytest.mark.parametrize("variant,h", [("m", 4), ("h", 1)])
def test_split_borders_are_the_standard_ones(variant, h):
  b1, b2, b3 = 12 * 720 * h, 16 * 720 * h, 20 * 720 * h
  assert ett.borders(variant) == (0, b1, b2, b3)
  starts = ett.window_starts(variant, 96, 24)
  # (first input row, last input row, first target row, last target row) of a window.
  rows = lambda s: (s, s + 95, s + 96, s + 119)
  assert rows(starts["train"][0]) == (0, 95, 96, 119)
  assert rows(starts["train"][-1])[3] == b1 - 1
  assert rows(starts["val"][0]) == (b1 - 96, b1 - 1, b1, b1 + 23)
  assert rows(starts["val"][-1])[3] == b2 - 1
  assert rows(starts["test"][0]) == (b2 - 96, b2 - 1, b2, b2 + 23)
  assert rows(starts["test"][-1])[3] == b3 - 1
  for name, first in (("train", 0), ("val", b1 - 96), ("test", b2 - 96)):
    np.testing.assert_array_equal(np.diff(starts[name]), 1)
    assert starts[name][0] == first
  thinned = ett.window_starts(variant, 96, 24, window_stride=ett.default_stride(variant))
  stride = 2 * h
  np.testing.assert_array_equal(thinned["train"], np.arange(0, b1 - 119, stride))
  np.testing.assert_array_equal(thinned["test"], starts["test"])
  # The windows hold those rows: with row r's values r + 1000 c, scaling is undone exactly.
  values = np.arange(b3 + 50)[:, None] + 1000.0 * np.arange(7)
  data = ett.splits(values, variant, 96, 24, window_stride=stride)
  for name, w in (("train", data.train), ("val", data.val), ("test", data.test)):
    row = np.rint(w.inputs[..., 0] * data.std[0] + data.mean[0])
    target = np.rint(w.labels[..., 0] * data.std[0] + data.mean[0])
    np.testing.assert_array_equal(row[:, 0], w.starts)
    np.testing.assert_array_equal(row[:, -1], w.starts + 95)
    np.testing.assert_array_equal(target[:, 0], w.starts + 96)
    np.testing.assert_array_equal(target[:, -1], w.starts + 119)
    np.testing.assert_array_equal(w.starts, thinned[name])
  assert data.val.labels.shape == (b2 - b1 - 23, 24, 7)


def test_scaling_uses_the_training_block_only():
  rng = np.random.default_rng(0)
  values = rng.normal(5.0, 3.0, size=(14400, 7))
  base = ett.splits(values, "h", 96, 24, window_stride=4)
  changed = values.copy()
  changed[8640:] = changed[8640:] * 10 + 100  # validation and test rows only
  other = ett.splits(changed, "h", 96, 24, window_stride=4)
  np.testing.assert_array_equal(base.mean, other.mean)
  np.testing.assert_array_equal(base.train.inputs, other.train.inputs)
  np.testing.assert_array_equal(base.train.labels, other.train.labels)
  assert not np.allclose(base.test.labels, other.test.labels)
  np.testing.assert_allclose(base.mean, values[:8640].mean(0).astype(np.float32), rtol=1e-6)
  np.testing.assert_allclose(base.std, values[:8640].std(0).astype(np.float32), rtol=1e-6)
  trained = changed.copy()
  trained[:100] += 50  # a training row moves the statistics, so every split's scaling
  assert not np.array_equal(ett.splits(trained, "h", 96, 24).test.labels, other.test.labels)


def test_the_taskset_trains_and_its_identity_follows_the_data(tmp_path, hourly_csv):
  ts = ett.ett(hourly_csv, variant="h", window_stride=16, width=8)
  assert ts.tasks == ett.COLUMNS and ts.metric_name == "mae"
  assert ts.train.inputs.shape == (533, 96, 7) and ts.train.labels.shape == (533, 24, 7)
  assert ts.val.inputs.shape == (2857, 96, 7) and ts.test.labels.shape == (2857, 24, 7)
  ts.check()
  params = ts.init_params(jax.random.key(0))
  batch = next(ts.train.train_batches(ts.batch_size, seed=0))
  losses = ts.task_losses(params, batch)
  assert losses.shape == (7,) and np.isfinite(losses).all()
  preds = ts.predict(params, batch.inputs)
  assert preds.shape == (7, ts.batch_size, 24)
  # One channel's loss is the MSE of its own 24 predicted steps.
  np.testing.assert_allclose(losses[6], np.mean((np.asarray(preds[6]) - batch.labels[..., 6]) ** 2),
                             rtol=1e-5)
  arguments = ts.definition["arguments"]
  assert "path" not in arguments and arguments["data_sha256"] == ett.file_digest(hourly_csv)
  copy = tmp_path / "elsewhere.csv"
  copy.write_bytes(open(hourly_csv, "rb").read())
  assert ett.ett(str(copy), variant="h", window_stride=16, width=8).definition == ts.definition
  other = ett.generate_csv(str(tmp_path / "seed1.csv"), "h", seed=1)
  assert ett.ett(other, variant="h", window_stride=16, width=8).definition != ts.definition


def test_malformed_files_are_one_line_user_errors(tmp_path):
  header = list(ett.HEADER)
  path = write(tmp_path / "no_ot.csv", header[:-1], [r[:-1] for r in good_rows(5)])
  with pytest.raises(UserError, match=r"no_ot\.csv:1: missing column\(s\) OT;"):
    ett.read_csv(path)
  rows = good_rows(5)
  rows[2][4] = "abc"  # data row 3 is line 4; field 4 is MULL
  path = write(tmp_path / "text.csv", header, rows)
  with pytest.raises(UserError, match=r"text\.csv:4: column MULL holds 'abc', not a finite"):
    ett.read_csv(path)
  rows = good_rows(5)
  rows[4][7] = "nan"
  with pytest.raises(UserError, match=r"nan\.csv:6: column OT holds 'nan'"):
    ett.read_csv(write(tmp_path / "nan.csv", header, rows))
  rows = good_rows(5)
  rows[1] = rows[1][:5]
  with pytest.raises(UserError, match=r"short\.csv:3: 5 fields, but the header has 8"):
    ett.read_csv(write(tmp_path / "short.csv", header, rows))
  with pytest.raises(UserError, match=r"cannot read the ETT CSV .*missing\.csv"):
    ett.read_csv(str(tmp_path / "missing.csv"))
  path = write(tmp_path / "few.csv", header, good_rows(200))
  with pytest.raises(UserError, match=r"few\.csv: the standard ETTh split needs 14400 rows .* "
                                      r"the data have 200"):
    ett.ett(path, variant="h")


def test_windows_and_variant_mismatches_are_user_errors(hourly_csv):
  with pytest.raises(UserError, match="no train window fits: the ETTh train block has 8640 rows"):
    ett.ett(hourly_csv, variant="h", input_len=9000)
  with pytest.raises(UserError, match="no val window fits"):
    ett.window_starts("h", 96, 3000)
  with pytest.raises(UserError, match="rows are 60 minutes apart, but variant 'm' expects 15"):
    ett.ett(hourly_csv, variant="m")
  with pytest.raises(UserError, match="fewer than the batch size"):
    ett.ett(hourly_csv, variant="h", window_stride=1000)


def test_launcher_writes_the_contract(tmp_path):
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", *TINY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  tasks = list(ett.COLUMNS)
  assert ett.read_csv(os.path.join(wd, "ett_generated_h.csv"))[1].shape == (14400, 7)
  gains = json.load(open(os.path.join(wd, "gains.json")))
  # principled runs in its default, marginal form.
  assert gains["tasks"] == tasks and gains["measure"] == "principled_marginal"
  assert np.shape(gains["gains"]) == (7, 7) and gains["counts"] == off_diagonal(7, 20)
  groups = json.load(open(os.path.join(wd, "groups.json")))
  assert len(groups["groups"]) == 3
  assert sorted(t for g in groups["groups"] for t in g) == sorted(tasks)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "ett"
  assert set(report["methods"]) == {"principled", "tag", "stl", "mtl_all"}
  for entry in report["methods"].values():
    assert set(entry["per_task"]) == set(tasks)
    assert entry["total_test_loss"] == pytest.approx(
        sum(v["test_loss"] for v in entry["per_task"].values()))
    assert all(np.isfinite(v["test_metric"]) and v["test_metric"] > 0
               for v in entry["per_task"].values())
  for png in ("gains.png", "results.png"):
    assert os.path.getsize(os.path.join(wd, png)) > 1000


@pytest.mark.parametrize("case,message", [
    ("missing_column", r"bad\.csv:1: missing column\(s\) LULL;"),
    ("not_a_number", r"bad\.csv:3: column HUFL holds 'x1', not a finite number"),
    ("too_few_rows", r"bad\.csv: the standard ETTm split needs 57600 rows"),
])
def test_malformed_files_exit_2_with_one_line(tmp_path, case, message):
  header, rows = list(ett.HEADER), [[f"2016-07-01 00:{15 * k:02d}:00", *r[1:]]
                                    for k, r in enumerate(good_rows(4))]
  if case == "missing_column":
    header, rows = header[:6] + header[7:], [r[:6] + r[7:] for r in rows]
  elif case == "not_a_number":
    rows[1][1] = "x1"
  path = write(tmp_path / "bad.csv", header, rows)
  proc = launch(f"--workdir={tmp_path / 'run'}", f"--data={path}", "--quiet")
  line = one_line_error(proc)
  assert path in line
  assert re.search(message, line), line


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")
  for flag in ("workdir", "methods", "num_groups", "seed", "max_steps", "quiet", "data",
               "variant", "input_len", "pred_len", "window_stride", "width", "train_steps"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag
