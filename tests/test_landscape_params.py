"""Landscape at a θ_0 of the user's own (LandscapeConfig.params): used as given, checked first."""
import json

import jax
import numpy as np
import pytest

from conftest import tiny_synthetic
from tgroup import train
from tgroup.errors import UserError
from tgroup.grouping import Constraints
from tgroup.landscape import measure
from tgroup.methods import LandscapeConfig
from tgroup.pipeline import PipelineConfig, run_pipeline


def config(**landscape):
  return PipelineConfig(methods=("landscape", "stl"), constraints=Constraints(num_groups=2),
                        quiet=True, chunk_size=4, landscape=LandscapeConfig(**landscape))


def test_given_params_are_the_theta0_measured(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=5)
  checkpoint = train.all_task_params(ts, 7, 1)  # a network trained elsewhere
  report = run_pipeline(ts, config(params=checkpoint), str(tmp_path))
  saved = json.load(open(tmp_path / "gains_landscape_dissimilarity.json"))
  expected = measure.landscape_dissimilarity(ts, num_samples=256, init_seeds=(0,),
                                             params=checkpoint, batch_size=ts.batch_size)
  np.testing.assert_allclose(saved["gains"], expected, rtol=1e-6, atol=1e-9)
  assert saved["settings"]["params"] == "given"
  assert report["settings"]["landscape"]["params"] == "given"
  assert report["methods"]["landscape"]["cost"]["networks"] == 0  # nothing trained for it
  # Not the random θ_0 the default measures at.
  default = measure.landscape_dissimilarity(ts, num_samples=256, init_seeds=(0,),
                                            batch_size=ts.batch_size)
  assert not np.allclose(expected, default)


@pytest.mark.parametrize("bad", [
    {"trunk": {}},
    "not parameters",
])
def test_params_of_another_model_are_refused_before_any_work(tmp_path, bad):
  ts = tiny_synthetic(2, 2, train_steps=5)
  with pytest.raises(UserError, match="landscape params"):
    run_pipeline(ts, config(params=bad), str(tmp_path))
  assert not (tmp_path / "report.json").exists()


def test_params_with_a_wrong_shape_are_refused(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=5)
  params = ts.init_params(jax.random.key(0))
  wider = jax.tree_util.tree_map(lambda x: np.zeros((*x.shape[:-1], x.shape[-1] + 1)), params)
  with pytest.raises(UserError, match="structure and shapes"):
    config(params=wider).validate(ts)
