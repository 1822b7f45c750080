"""Gains over training steps: snapshots, their checkpointing, the stability measures, the plot."""
import dataclasses
import os

import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from tgroup import pipeline
from tgroup import plots
from tgroup.gains import CollectConfig, collect_gains, run_collection
from tgroup.gains import collect as collect_lib
from tgroup.gains.history import GainsHistory, load_histories, save_histories, snapshot_steps
from tgroup.grouping import Constraints


def history(gains, counts=None, steps=None):
  gains = np.asarray(gains, float)
  p, m, _ = gains.shape
  return GainsHistory(tuple(f"t{i}" for i in range(m)), "principled",
                      np.arange(1, p + 1) * 10 if steps is None else np.asarray(steps),
                      gains, np.ones_like(gains, int) if counts is None else np.asarray(counts))


@pytest.mark.parametrize("steps", [1, 7, 19, 20, 21, 39, 40, 2000, 2017])
def test_snapshot_steps_are_evenly_spaced_and_end_at_the_last_step(steps):
  s = snapshot_steps(steps)
  assert s[-1] == steps and s == sorted(set(s)) and s[0] >= 1
  assert len(s) == min(steps, 20)
  gaps = np.diff([0] + s)
  assert gaps.max() - gaps.min() <= 1


def test_rank_correlation_and_stable_step_on_a_dip():
  final = np.arange(16.0).reshape(4, 4)
  noisy = final.copy()
  noisy[0, 1], noisy[3, 2] = noisy[3, 2], noisy[0, 1]  # far apart: ρ drops below 0.9
  h = history([-final, final, noisy, final, final])
  rho = h.rank_correlation()
  assert rho[0] == pytest.approx(-1.0) and rho[1] == pytest.approx(1.0)
  assert rho[2] < 0.9 and rho[3] == rho[4] == pytest.approx(1.0)
  assert h.stable_step() == 40  # above at step 20, but not for good
  assert h.stable_step(threshold=-1.0) == 10
  assert h.best_source_agreement().tolist()[0] == 0.0
  assert h.best_source_agreement().tolist()[-1] == 1.0


def test_uncollected_entries_are_left_out_of_the_correlation():
  final = np.array([[0, 1, 2], [3, 0, 4], [5, 6, 0]], float)
  early = final.copy()
  early[0, 1] = early[2, 1] = 100.0  # garbage where nothing was collected yet
  counts = np.ones((2, 3, 3), int)
  counts[0, 0, 1] = counts[0, 2, 1] = 0
  h = history([early, final], counts)
  assert h.rank_correlation()[0] == pytest.approx(1.0)
  # Column 1 had no collected source at the first snapshot: it cannot agree yet.
  assert h.best_source_agreement()[0] == pytest.approx(2 / 3)


def test_no_ordering_to_settle_on_gives_none():
  h = history(np.zeros((3, 3, 3)))
  assert h.stable_step() is None
  assert np.isnan(h.rank_correlation()).all()


def test_history_json_round_trip(tmp_path):
  rng = np.random.default_rng(1)
  h = history(rng.normal(size=(4, 3, 3)), rng.integers(0, 3, (4, 3, 3)))
  path = str(tmp_path / "h.json")
  save_histories(path, [h], key={"a": 1})
  back, rest = load_histories(path)
  assert rest == {"key": {"a": 1}}
  b = back["principled"]
  assert b.tasks == h.tasks and np.array_equal(b.steps, h.steps)
  assert np.array_equal(b.gains, h.gains) and np.array_equal(b.counts, h.counts)


def test_gains_over_time_returns_a_figure_and_writes_a_png(tmp_path):
  final = np.arange(9.0).reshape(3, 3)
  h = history([-final, final, final])
  path = str(tmp_path / "g.png")
  fig = plots.gains_over_time(h, path)
  assert len(fig.axes) == 2
  np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), h.rank_correlation())
  np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), h.best_source_agreement())
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --- recorded during collection --------------------------------------------------------------


def test_a_snapshot_is_the_gains_of_a_run_stopped_there():
  """Sampled tasks and lazy collection: snapshot k is bitwise a run of steps[k] steps."""
  ts = tiny_synthetic(2, 2)
  config = CollectConfig(measures=("principled", "tag"), steps=23, collect_every=2,
                         sample_tasks=3, strategy="vmap", quiet=True)
  gains, _, histories = run_collection(ts, config)
  h = histories["tag"]
  assert h.steps.tolist() == snapshot_steps(23) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14,
                                                    16, 17, 18, 19, 20, 21, 23]
  assert np.array_equal(h.gains[-1], gains["tag"].gains)
  assert np.array_equal(h.counts[-1], gains["tag"].counts)
  short = collect_gains(ts, dataclasses.replace(config, steps=9))
  k = h.steps.tolist().index(9)  # steps 0, 2, 4, 6, 8 collected, as in the 9-step run
  for name in ("principled", "tag"):
    assert np.array_equal(histories[name].counts[k], short[name].counts), name
    assert np.array_equal(histories[name].gains[k], short[name].gains), name
  assert (np.diff(h.counts.sum(axis=(1, 2))) >= 0).all()


def test_history_survives_a_resume_bitwise(tmp_path, saved_checkpoints):
  ts = dataclasses.replace(tiny_synthetic(2, 2), optimizer=optax.adam(1e-2))
  config = CollectConfig(measures=("principled",), steps=23, collect_every=2,
                         strategy="vmap", checkpoint_every=5, quiet=True)
  kept = saved_checkpoints  # step -> a copy of the checkpoint written then
  directory = str(tmp_path / "ckpt")
  whole = run_collection(ts, config, checkpoint_dir=directory).histories
  assert sorted(kept) == [5, 10, 15, 20]
  assert whole["principled"].steps.tolist() == snapshot_steps(23)
  with open(os.path.join(directory, collect_lib.CHECKPOINT_FILE), "wb") as f:
    f.write(kept[15])  # snapshots up to 14 come from the checkpoint, 16.. are recomputed
  resumed = run_collection(ts, config, checkpoint_dir=directory).histories
  a, b = whole["principled"], resumed["principled"]
  assert np.array_equal(a.steps, b.steps)
  assert np.array_equal(a.gains, b.gains) and np.array_equal(a.counts, b.counts)
  assert (a.counts[0] > 0).all()  # not a comparison of empty buffers


def test_pipeline_writes_the_history_and_its_plot_and_reuses_them(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=40)
  cfg = pipeline.PipelineConfig(methods=("tag", "principled", "stl"),
                                constraints=Constraints(num_groups=2), quiet=True)
  workdir = str(tmp_path)
  pipeline.run_pipeline(ts, cfg, workdir)
  histories, rest = load_histories(os.path.join(workdir, "gains_history.json"))
  assert sorted(histories) == ["principled_marginal", "tag"]  # principled's default form
  assert rest["key"]["taskset"] == ts.definition  # the identity the gains were saved under
  assert histories["tag"].steps.tolist() == snapshot_steps(40)
  assert histories["tag"].stable_step() is not None
  png = os.path.join(workdir, "gains_over_time.png")
  assert os.path.getsize(png) > 0
  os.unlink(png)
  pipeline.run_pipeline(ts, cfg, workdir)  # reuses the gains: the figure comes back
  assert os.path.getsize(png) > 0
