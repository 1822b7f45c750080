"""The landscape controls: label disagreement, the additive fit, noise inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tgroup.benchmarks.synthetic import synthetic
from tgroup.errors import UserError
from tgroup.landscape import controls, measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_disagreement_of_real_labels_is_the_mean_gap_of_standardised_labels():
  rng = np.random.default_rng(0)
  y = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
  z = (y - y.mean(0)) / y.std(0)
  want = np.array([[np.abs(z[:, a] - z[:, b]).mean() for b in range(3)] for a in range(3)])
  np.testing.assert_allclose(controls.label_disagreement(y), want)
  # A task and its rescaled copy agree completely.
  assert controls.label_disagreement(np.stack([y[:, 0], 3 * y[:, 0] + 1], 1))[0, 1] < 1e-12


def test_the_fit_separates_offsets_from_the_covariate():
  rng = np.random.default_rng(1)
  m = 7
  h, x = rng.uniform(size=m), rng.uniform(size=(m, m))
  x = (x + x.T) / 2
  exact = controls.additive_fit(h[:, None] + h[None, :] + 2.5 * x, x)
  assert exact.r2 == pytest.approx(1.0) and exact.slope == pytest.approx(2.5)
  offsets_only = controls.additive_fit(h[:, None] + h[None, :] + 0 * x, rng.uniform(size=(m, m)))
  assert offsets_only.r2_offsets == pytest.approx(1.0) and abs(offsets_only.slope) < 1e-9
  with pytest.raises(UserError, match="at least 4 tasks"):
    controls.additive_fit(np.zeros((3, 3)), np.zeros((3, 3)))


def test_at_the_default_theta0_the_dissimilarity_does_not_read_the_inputs():
  """Measured on the planted benchmark: noise inputs, same labels, same dissimilarity order."""
  ts = synthetic(3, 3, rho=1.0, num_train=256, num_val=8, num_test=8)
  d = measure.landscape_dissimilarity(ts, num_samples=256)
  noisy = measure.landscape_dissimilarity(controls.noise_inputs(ts), num_samples=256)
  i, j = np.triu_indices(ts.num_tasks, 1)
  assert np.corrcoef(d[i, j], noisy[i, j])[0, 1] > 0.99
  disagree = controls.label_disagreement(controls.training_labels(ts, 256))
  assert controls.additive_fit(d, disagree).r2 > 0.95


def test_unknown_benchmark_exits_2_with_one_line(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "launch.landscape_controls",
                         f"--workdir={tmp_path}", "--benchmarks=digits,mnist"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and "unknown benchmark(s) ['mnist']" in lines[0], proc.stderr


def test_a_warmed_up_theta0_is_the_all_task_network_after_n_steps(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from conftest import tiny_synthetic  # pylint: disable=g-import-not-at-top
  from tgroup import train  # pylint: disable=g-import-not-at-top
  from tgroup.grouping import Constraints  # pylint: disable=g-import-not-at-top
  from tgroup.methods import LandscapeConfig  # pylint: disable=g-import-not-at-top
  from tgroup.pipeline import PipelineConfig, run_pipeline  # pylint: disable=g-import-not-at-top
  ts = tiny_synthetic(2, 2, train_steps=10)
  reports = {}
  for steps in (0, 5):
    config = PipelineConfig(methods=("landscape",), constraints=Constraints(num_groups=2),
                            quiet=True, landscape=LandscapeConfig(samples=64, warmup_steps=steps))
    reports[steps] = run_pipeline(ts, config, str(tmp_path / f"w{steps}"))
  assert reports[0]["methods"]["landscape"]["cost"]["networks"] == 0
  assert reports[5]["methods"]["landscape"]["cost"]["networks"] == 1
  assert reports[5]["settings"]["landscape"]["warmup_steps"] == 5
  saved = json.load(open(tmp_path / "w5" / "gains_landscape_dissimilarity.json"))
  # The same dissimilarity from the network after 5 all-task steps, computed directly.
  state = train.train_networks(ts, np.ones((1, 4)), jax.random.key(0)[None], steps=5,
                               data_seed=0, quiet=True)
  want = measure.landscape_dissimilarity(ts, num_samples=64, batch_size=ts.batch_size,
                                         params=jax.tree.map(lambda x: x[0], state.params))
  np.testing.assert_allclose(saved["gains"], want, rtol=1e-5)
  random_theta0 = json.load(open(tmp_path / "w0" / "gains_landscape_dissimilarity.json"))
  assert not np.allclose(saved["gains"], random_theta0["gains"], rtol=1e-3)
