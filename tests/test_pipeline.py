"""The pipeline's stages: gains a caller collected, methods of a user's own, validation."""
import dataclasses
import json

import numpy as np
import pytest

from conftest import tiny_synthetic
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, collect_gains
from tgroup.gains import reuse
from tgroup.grouping import Constraints
from tgroup.methods import Method, Outcome
from tgroup.pipeline import PipelineConfig, run_pipeline

CONFIG = PipelineConfig(methods=("principled", "tag", "stl"), constraints=Constraints(num_groups=2),
                        quiet=True, chunk_size=4)


def without_seconds(report):
  # Times: "seconds", and the seconds of "cost" (its networks are compared).
  return {name: {k: (v["networks"] if k == "cost" else v) for k, v in e.items()
                 if k != "seconds"} for name, e in report["methods"].items()}


def test_gains_collected_beforehand_are_used_instead_of_collecting(tmp_path, monkeypatch):
  ts = tiny_synthetic(2, 2, train_steps=25)
  collected = run_pipeline(ts, CONFIG, str(tmp_path / "collected"))
  gains = collect_gains(ts, CONFIG.collect_config())  # the settings the pipeline collects with
  monkeypatch.setattr(reuse, "run_collection", lambda *a, **k: pytest.fail("collected again"))
  given = run_pipeline(ts, CONFIG, str(tmp_path / "given"), gains=gains)
  assert without_seconds(given) == without_seconds(collected)
  with open(tmp_path / "given" / "gains_tag.json") as f:
    saved = np.array(json.load(f)["gains"])
  np.testing.assert_array_equal(saved, gains["tag"].gains)


def test_only_the_measures_not_given_are_collected(tmp_path, monkeypatch):
  ts = tiny_synthetic(2, 2, train_steps=25)
  gains = collect_gains(ts, CollectConfig(measures=("principled_marginal",), quiet=True))
  asked = []
  original = reuse.run_collection

  def spy(taskset, config, **kwargs):
    asked.append(config.measures)
    return original(taskset, config, **kwargs)

  monkeypatch.setattr(reuse, "run_collection", spy)
  report = run_pipeline(ts, CONFIG, str(tmp_path), gains=gains)
  assert asked == [("tag",)]
  assert report["methods"]["tag"]["measure"] == "tag"


def test_gains_of_other_tasks_are_refused(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=5)
  other = collect_gains(tiny_synthetic(1, 4, train_steps=5), CollectConfig(steps=2, quiet=True))
  with pytest.raises(UserError, match=r"the given principled gains are for tasks \['c0_t0', "
                     r"'c0_t1', 'c0_t2', 'c0_t3'\], the TaskSet's are \['c0_t0', 'c0_t1', "
                     r"'c1_t0', 'c1_t1'\]"):
    run_pipeline(ts, CONFIG, str(tmp_path), gains=other)


def _every_task_alone(method, context):
  m = context.taskset.num_tasks
  return Outcome(draws=(([(i,) for i in range(m)], None),))


def test_a_method_of_ones_own_runs_next_to_the_built_in_ones(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=5)
  checked = []
  mine = Method(name="mine", summary="every task alone, as a baseline of my own",
                group=_every_task_alone, baseline=True,
                check=lambda config, taskset: checked.append(taskset.tasks))
  report = run_pipeline(ts, dataclasses.replace(CONFIG, methods=("principled", mine, "stl")),
                        str(tmp_path))
  assert checked == [ts.tasks]
  assert report["methods"]["mine"]["total_test_loss"] == report["methods"]["stl"][
      "total_test_loss"]
  assert report["settings"]["methods"] == ["principled", "mine", "stl"]


def test_a_method_is_refused_constraints_it_cannot_honour(tmp_path):
  ts = tiny_synthetic(2, 2, train_steps=5)
  partial = Method(name="partial", summary="only a number of groups", group=_every_task_alone,
                   constraints=("num_groups",))
  config = dataclasses.replace(CONFIG, methods=(partial,),
                               constraints=Constraints(num_groups=2, max_group_size=2))
  with pytest.raises(UserError, match=r"partial can honour only num_groups, not max_group_size"):
    run_pipeline(ts, config, str(tmp_path))
  with pytest.raises(UserError, match=r"unknown method\(s\) \['nope'\]"):
    run_pipeline(ts, dataclasses.replace(CONFIG, methods=("stl", "nope")), str(tmp_path))
