"""The calibrated method: its predictor on known answers, and the method through the pipeline.

The predictor's features are checked against a slow loop written from their
definition (tgroup/calibration.py's module docstring), and its fit against
losses generated exactly by a linear model in them. The method runs end to end
on four planted tasks with the real collection run, real group networks and
CBC; the networks it trains are watched at ``evaluate._train_chunk`` (the one
place any network is trained), so a count in report.json cannot hide one.
"""
import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import brute_force_grouping as bf
from conftest import one_line_error, tiny_synthetic
from tgroup import calibration
from tgroup import evaluate
from tgroup import pipeline
from tgroup.errors import UserError
from tgroup.gains import reuse
from tgroup.grouping import Constraints
from tgroup.methods import CalibratedConfig
from tgroup.methods.calibrated import candidate_count
from tgroup.pipeline import PipelineConfig, run_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The features the predictor reads on a TaskSet without lookahead_losses, and its own two.
COEFFICIENTS = {"cosine", "first_order", "landscape", "principled", "tag", "groupmates",
                "intercept"}


def read(wd, name):
  with open(os.path.join(wd, name)) as f:
    return json.load(f)


def without_seconds(report):
  # Times differ between runs: "seconds", and the seconds of "cost" (its networks do not).
  return {name: {k: (v["networks"] if k == "cost" else v) for k, v in e.items()
                 if k != "seconds"} for name, e in report["methods"].items()}


def is_partition(groups, tasks) -> bool:
  flat = [t for g in groups for t in g]
  return sorted(flat) == sorted(tasks) and all(groups)


def obeys(group, constraints: Constraints) -> bool:
  """A group (task names) against the constraints, from their definitions."""
  g = set(group)
  return ((constraints.max_group_size is None or len(g) <= constraints.max_group_size)
          and not any(a in g and b in g for a, b in constraints.cannot_link)
          and all((a in g) == (b in g) for a, b in constraints.must_link))


@pytest.fixture
def watch_training(monkeypatch):
  """Every group trained, split by stage: ``method`` (grouping) and ``evaluate`` (the rest).

  The pipeline writes the groupings between the two stages, so the split is made there.
  """
  seen = {"method": [], "evaluate": []}
  stage = ["method"]
  # pylint: disable=protected-access
  original_chunk, original_write = evaluate._train_chunk, pipeline._write_groupings

  def chunk(taskset, groups, *args, **kwargs):
    seen[stage[0]].extend(tuple(g) for g in groups)
    return original_chunk(taskset, groups, *args, **kwargs)

  def write(*args, **kwargs):
    stage[0] = "evaluate"
    return original_write(*args, **kwargs)

  monkeypatch.setattr(evaluate, "_train_chunk", chunk)
  monkeypatch.setattr(pipeline, "_write_groupings", write)
  return seen


def forbid_training(monkeypatch):
  fail = lambda *a, **k: pytest.fail("trained a network or collected gains")
  monkeypatch.setattr(evaluate, "_train_chunk", fail)
  monkeypatch.setattr(reuse, "run_collection", fail)


# --- the predictor -----------------------------------------------------------------------------


def slow_standardise(matrix):
  """Off-diagonal z-scores (population spread), by loops; zeros when the spread is 0."""
  m = len(matrix)
  values = [float(matrix[i][j]) for i in range(m) for j in range(m) if i != j]
  mean = math.fsum(values) / len(values)
  spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
  return [[0.0 if i == j or spread == 0 else (float(matrix[i][j]) - mean) / spread
           for j in range(m)] for i in range(m)]


def slow_features(signals, groups):
  """features[c, a] = [mean over b in G∖{a} of z_s[b, a], per signal by name] + [|G| − 1]."""
  names = sorted(signals)
  z = {s: slow_standardise(signals[s]) for s in names}
  m = len(signals[names[0]])
  out = np.zeros((len(groups), m, len(names) + 1))
  for c, g in enumerate(groups):
    for a in g:
      mates = [b for b in g if b != a]
      for k, s in enumerate(names):
        out[c, a, k] = math.fsum(z[s][b][a] for b in mates) / len(mates)
      out[c, a, -1] = len(mates)
  return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_received_features_equal_a_loop_over_members(seed):
  rng = np.random.default_rng(seed)
  m = int(rng.integers(2, 7))
  # Names out of order (features follow the sorted names), one signal sometimes constant.
  signals = {name: rng.normal(size=(m, m)) * rng.uniform(0.1, 10) for name in
             ("tag", "cosine", "principled")[:int(rng.integers(1, 4))]}
  if rng.random() < 0.3:
    signals["cosine"] = np.full((m, m), 3.0)
  subsets = [g for s in range(2, m + 1) for g in itertools.combinations(range(m), s)]
  groups = [subsets[i] for i in rng.choice(len(subsets), size=int(rng.integers(1, 8)))]
  np.testing.assert_allclose(calibration.received_features(signals, groups),
                             slow_features(signals, groups), rtol=1e-9, atol=1e-12)


def test_standardise_of_a_constant_matrix_is_zeros():
  for matrix in (np.full((3, 3), 7.0), np.where(np.eye(4), 5.0, -2.0)):  # constant off-diagonal
    z = calibration.standardise(matrix)
    assert z.shape == matrix.shape and not z.any()
  z = calibration.standardise(np.arange(16.0).reshape(4, 4))
  off = ~np.eye(4, dtype=bool)
  assert abs(z[off].mean()) < 1e-12 and abs(z[off].std() - 1) < 1e-12 and not np.diag(z).any()


def test_predictor_recovers_a_known_linear_model_and_predicts_untrained_groups():
  rng = np.random.default_rng(3)
  m = 6
  signals = {"b": rng.normal(size=(m, m)), "a": rng.gamma(2.0, size=(m, m))}
  groups = [g for s in (2, 3, 4) for g in itertools.combinations(range(m), s)]
  features = calibration.received_features(signals, groups)
  alone = rng.uniform(0.5, 2.0, size=m)
  weights, bias = np.array([0.3, -0.2, 0.05]), -0.1  # on a, b, groupmates
  truth = alone * (1 + features @ weights + bias)  # (C, m): member losses, exactly linear
  assert truth[calibration.membership(groups, m)].min() > 0  # losses a network could give
  measured, unseen = [c for c, g in enumerate(groups) if len(g) < 4], [
      c for c, g in enumerate(groups) if len(g) == 4]
  # Non-members carry NaN: the fit must read members only.
  member = calibration.membership(groups, m)
  losses = {groups[c]: np.where(member[c], truth[c], np.nan) for c in measured}
  predictor = calibration.GroupLossPredictor(features, groups, alone).fit(losses)
  prediction = predictor.predict()
  totals = (truth * member).sum(axis=1)
  np.testing.assert_allclose(prediction.mean[unseen], totals[unseen], rtol=1e-6)
  np.testing.assert_allclose(prediction.mean[measured], totals[measured], rtol=1e-6)
  assert np.all(prediction.std >= 0) and np.all(prediction.std < 1e-3 * totals)
  coefficients = predictor.coefficients(["a", "b", "groupmates"])
  assert set(coefficients) == {"a", "b", "groupmates", "intercept"}
  np.testing.assert_allclose([coefficients[k] for k in ("a", "b", "groupmates", "intercept")],
                             [*weights, bias], atol=1e-6)


def test_predictive_spread_grows_with_noise_in_the_measured_losses():
  """The std is the search's measure of doubt: exact losses give less than noisy ones."""
  rng = np.random.default_rng(4)
  m = 5
  signals = {"a": rng.normal(size=(m, m)), "b": rng.normal(size=(m, m))}
  groups = [g for s in (2, 3) for g in itertools.combinations(range(m), s)]
  features = calibration.received_features(signals, groups)
  alone = np.ones(m)
  truth = alone * (1 + features @ np.array([0.2, 0.1, 0.0]))
  noisy = truth * (1 + 0.2 * rng.normal(size=truth.shape))
  spread = lambda losses: calibration.GroupLossPredictor(features, groups, alone).fit(
      {g: losses[c] for c, g in enumerate(groups)}).predict().std
  assert np.all(spread(noisy) > 10 * spread(truth))


def test_fit_needs_two_measured_members():
  features = calibration.received_features({"a": np.eye(3)}, [(0,), (0, 1)])
  predictor = calibration.GroupLossPredictor(features, [(0,), (0, 1)], np.ones(3))
  for measured in ({}, {(0,): np.ones(3)}):
    with pytest.raises(ValueError, match="at least two measured members"):
      predictor.fit(measured)
  predictor.fit({(0, 1): np.ones(3)})  # two members: enough


def test_candidate_count_equals_the_subsets_it_counts():
  for m in range(2, 8):
    for top in (None, *range(1, m + 1)):
      subsets = [g for s in range(2, m + 1) for g in itertools.combinations(range(m), s)
                 if top is None or s <= top]
      assert candidate_count(m, top) == len(subsets), (m, top)


# --- the method end to end --------------------------------------------------------------------

RUN = PipelineConfig(methods=("calibrated", "oracle", "stl", "mtl_all"),
                     constraints=Constraints(num_groups=2), quiet=True, chunk_size=4,
                     calibrated=CalibratedConfig(networks=3))


@pytest.fixture(scope="module")
def ts():
  # One TaskSet (and one number of steps) for every run here: they share compiled steps.
  # A benchmark factory's TaskSet has a definition, so the network cache is on disk.
  return tiny_synthetic(2, 2, train_steps=20)


@pytest.fixture(scope="module")
def run(ts, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("calibrated"))
  return ts, wd, run_pipeline(ts, RUN, wd)


def oracle_test_total(wd, k):
  """Test total of the best partition into k groups on validation, by brute force."""
  table = read(wd, "oracle/table.json")
  networks = {tuple(n["group"]): n for n in table["networks"]}
  m = len(table["tasks"])
  val = lambda p: math.fsum(networks[tuple(b)]["val_loss"][t] for b in p for t in b)
  best = min((p for p in bf.set_partitions(list(range(m))) if len(p) == k), key=val)
  return math.fsum(networks[tuple(b)]["test_loss"][t] for b in best for t in b)


def test_report_entry_and_calibrated_json(run):
  ts, wd, report = run
  entry = report["methods"]["calibrated"]
  assert is_partition(entry["groups"], ts.tasks) and len(entry["groups"]) == 2
  assert isinstance(entry["regret"], float)
  assert entry["regret"] == pytest.approx(
      entry["total_test_loss"] - oracle_test_total(wd, 2), abs=1e-9)
  assert entry["network_budget"] == 3 and entry["kappa"] == 2.0 and entry["rounds"] >= 1
  trained = entry["trained"]
  assert 1 <= entry["cost"]["networks"] == len(trained) <= 3
  assert len({tuple(g) for g in trained}) == len(trained)
  assert all(len(g) >= 2 and set(g) <= set(ts.tasks) for g in trained)
  assert set(entry["predictor"]) == COEFFICIENTS
  assert all(math.isfinite(v) for v in entry["predictor"].values())
  for name in ("stl", "mtl_all"):  # the only partitions of their size: nothing to compare
    assert report["methods"][name]["regret"] is None, name
  saved = read(wd, "calibrated.json")
  assert {k: saved[k] for k in ("trained", "rounds", "network_budget", "kappa", "predictor")} == {
      k: entry[k] for k in ("trained", "rounds", "network_budget", "kappa", "predictor")}
  # Its measured losses are the oracle's networks for the same groups (one cache, one protocol).
  oracle = {tuple(n["group"]): n for n in read(wd, "oracle/table.json")["networks"]}
  assert [r["group"] for r in saved["trained_val_loss"]] == trained
  for r in saved["trained_val_loss"]:
    row = oracle[tuple(ts.tasks.index(t) for t in r["group"])]["val_loss"]
    assert r["val_loss"] == [row[ts.tasks.index(t)] for t in r["group"]]
  assert read(wd, "groups_calibrated.json")["groups"] == entry["groups"]


def test_rerun_trains_nothing_and_decides_the_same(run, monkeypatch):
  ts, wd, first = run
  saved = read(wd, "calibrated.json")
  forbid_training(monkeypatch)
  second = run_pipeline(ts, RUN, wd)
  assert second["methods"]["calibrated"]["trained"] == first["methods"]["calibrated"]["trained"]
  assert second["methods"]["calibrated"]["groups"] == first["methods"]["calibrated"]["groups"]
  assert without_seconds(second) == without_seconds(first)
  assert read(wd, "calibrated.json") == saved


def test_a_budget_of_one_network_trains_one_group(ts, tmp_path, watch_training):
  config = PipelineConfig(methods=("calibrated",), quiet=True, chunk_size=4,
                          calibrated=CalibratedConfig(networks=1))
  entry = run_pipeline(ts, config, str(tmp_path))["methods"]["calibrated"]
  assert len(entry["trained"]) == 1 and len(entry["trained"][0]) >= 2
  assert entry["cost"]["networks"] == 1 and entry["network_budget"] == 1 and entry["rounds"] == 1
  assert is_partition(entry["groups"], ts.tasks)
  # What it trained while grouping: the four single tasks and that one group, nothing else.
  named = [[ts.tasks[t] for t in g] for g in watch_training["method"]]
  assert sorted(named) == sorted([[t] for t in ts.tasks] + entry["trained"])


def test_constraints_hold_for_the_groups_and_every_trained_network(ts, tmp_path,
                                                                   watch_training):
  # The gains pair each cluster's tasks: forbid one such pair, and tie tasks across clusters.
  constraints = Constraints(cannot_link=[("c0_t0", "c0_t1")], must_link=[("c0_t0", "c1_t0")])
  config = PipelineConfig(methods=("calibrated",), constraints=constraints, quiet=True,
                          chunk_size=4, calibrated=CalibratedConfig(networks=2))
  entry = run_pipeline(ts, config, str(tmp_path))["methods"]["calibrated"]
  assert is_partition(entry["groups"], ts.tasks)
  assert all(obeys(g, constraints) for g in entry["groups"]), entry["groups"]
  assert entry["trained"] and all(obeys(g, constraints) for g in entry["trained"])
  multi = [[ts.tasks[t] for t in g] for g in watch_training["method"] if len(g) > 1]
  assert multi == entry["trained"]


@pytest.mark.parametrize("settings_, message", [
    (CalibratedConfig(networks=0), r"calibrated networks .* must be >= 1, got 0"),
    (CalibratedConfig(kappa=-1), r"calibrated kappa .* must be >= 0, got -1"),
    (CalibratedConfig(kappa=math.nan), r"calibrated kappa .* must be >= 0, got nan"),
    (CalibratedConfig(max_candidates=3), r"11 for 4 tasks, more than its limit of 3"),
])
def test_bad_settings_are_user_errors_before_any_training(ts, tmp_path, monkeypatch, settings_,
                                                          message):
  config = PipelineConfig(methods=("calibrated",), quiet=True, calibrated=settings_)
  with pytest.raises(UserError, match=message) as e:
    config.validate(ts)
  assert "\n" not in str(e.value)
  forbid_training(monkeypatch)
  with pytest.raises(UserError, match=message):
    run_pipeline(ts, config, str(tmp_path))


def test_max_group_size_lowers_the_candidate_count(ts):
  pairs_only = Constraints(max_group_size=2)  # the 6 pairs of 4 tasks
  PipelineConfig(methods=("calibrated",), constraints=pairs_only,
                 calibrated=CalibratedConfig(max_candidates=6)).validate(ts)
  with pytest.raises(UserError, match="6 for 4 tasks, more than its limit of 5"):
    PipelineConfig(methods=("calibrated",), constraints=pairs_only,
                   calibrated=CalibratedConfig(max_candidates=5)).validate(ts)


@pytest.mark.parametrize("constraints", [
    Constraints(max_group_size=1),
    Constraints(cannot_link=[("c0_t0", "c0_t1"), ("c0_t0", "c1_t0"), ("c0_t0", "c1_t1"),
                             ("c0_t1", "c1_t0"), ("c0_t1", "c1_t1"), ("c1_t0", "c1_t1")])])
def test_constraints_leaving_no_group_to_train_are_refused_by_validate(ts, constraints):
  config = PipelineConfig(methods=("calibrated",), constraints=constraints)
  with pytest.raises(UserError, match="no group"):
    config.validate(ts)


def test_collect_config_measures_every_signal_the_taskset_can_give(ts):
  config = PipelineConfig(methods=("calibrated",))
  assert set(config.collect_config(ts).measures) == {"principled", "tag", "cosine",
                                                     "first_order"}
  scored = dataclasses.replace(ts, lookahead_losses=lambda p: jnp.ones(ts.num_tasks))
  measures = config.collect_config(scored).measures
  assert set(measures) == {"principled", "tag", "cosine"}
  config.validate(scored)  # and nothing refuses it for the missing first-order gains


@pytest.mark.slow
def test_runs_without_first_order_on_a_taskset_with_lookahead_losses(ts, tmp_path):
  held_out = next(ts.val.eval_batches(16))
  scored = dataclasses.replace(ts, lookahead_losses=lambda p: ts.task_losses(p, held_out))
  config = PipelineConfig(methods=("calibrated",), quiet=True, chunk_size=4,
                          calibrated=CalibratedConfig(networks=2))
  entry = run_pipeline(scored, config, str(tmp_path))["methods"]["calibrated"]
  assert set(entry["predictor"]) == COEFFICIENTS - {"first_order"}
  assert is_partition(entry["groups"], ts.tasks) and 1 <= entry["cost"]["networks"] <= 2


# --- the launcher -----------------------------------------------------------------------------

TINY = ["--num_clusters=2", "--tasks_per_cluster=2", "--max_steps=30", "--quiet", "--chunk_size=4"]


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.synthetic", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_launcher_runs_calibrated(tmp_path):
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", "--methods=calibrated,oracle,stl,mtl_all", *TINY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = read(wd, "report.json")
  assert list(report["methods"]) == ["calibrated", "oracle", "stl", "mtl_all"]
  entry = report["methods"]["calibrated"]
  assert is_partition(entry["groups"], report["tasks"]) and entry["regret"] is not None
  # No --calibrated_networks: a third of the 6 pairs of 4 tasks.
  assert entry["network_budget"] == 2 and 1 <= entry["cost"]["networks"] <= 2
  assert report["settings"]["calibrated"] == {"networks": None, "kappa": 2.0,
                                              "max_candidates": 20000}
  assert os.path.exists(os.path.join(wd, "calibrated.json"))


def test_launcher_refuses_zero_networks_in_one_line(tmp_path):
  proc = launch(f"--workdir={tmp_path / 'run'}", "--methods=calibrated",
                "--calibrated_networks=0", *TINY)
  assert "--calibrated_networks" in one_line_error(proc)
  assert not os.path.exists(tmp_path / "run" / "networks")
