"""The comparison methods: oracle, HOA, random, cosine/first-order, regret."""
import dataclasses
import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from conftest import tiny_synthetic
from tgroup import baselines, oracle
from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping import Constraints, solve_measured
from tgroup.pipeline import PipelineConfig, run_pipeline

ALL = ("principled", "tag", "cosine", "first_order", "hoa", "landscape", "random", "oracle", "stl",
       "mtl_all")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  ts = tiny_synthetic(2, 2, train_steps=30)
  wd = str(tmp_path_factory.mktemp("methods"))
  config = PipelineConfig(methods=ALL, constraints=Constraints(num_groups=2), quiet=True,
                          chunk_size=4, random_draws=3, run_key={"test": "methods"})
  return ts, config, wd, run_pipeline(ts, config, wd)


def test_every_method_is_reported_with_a_regret(full_run):
  ts, _, wd, report = full_run
  assert list(report["methods"]) == list(ALL)
  for name, e in report["methods"].items():
    assert e["regret"] is not None, name
    assert {t for g in e["groups"] for t in g} == set(ts.tasks)
  assert report["methods"]["oracle"]["regret"] == 0.0
  assert len(report["methods"]["random"]["draws"]) == 3
  assert -1 <= report["methods"]["first_order"]["spearman_with_principled"] <= 1
  for e in report["methods"].values():
    assert -1 <= e["adjusted_rand_index"] <= 1
  assert report["methods"]["oracle"]["adjusted_rand_index"] == pytest.approx(
      1.0 if report["methods"]["oracle"]["matches_ground_truth"] else
      report["methods"]["oracle"]["adjusted_rand_index"])
  assert len(report["methods"]["landscape"]["groups"]) == 2
  assert report["methods"]["landscape"]["within_across_ratio"] > 0
  for f in ("gains_cosine.json", "gains_first_order.json", "gains_hoa.json",
            "gains_landscape_dissimilarity.json", "landscape.json",
            os.path.join("oracle", "table.json"), "groups_oracle.json", "groups_hoa.json"):
    assert os.path.exists(os.path.join(wd, f)), f


def test_oracle_selects_the_best_validation_partition(full_run):
  ts, config, wd, report = full_run
  table = oracle.subset_table(ts, seeds=(0,), steps=30, quiet=True, chunk_size=4)
  assert len(table) == 2 ** ts.num_tasks - 1
  best_val = oracle.ranked_partitions(table, ts.num_tasks, num_groups=2, key="val_loss")[0][1]
  chosen = sorted(tuple(ts.tasks.index(t) for t in g)
                  for g in report["methods"]["oracle"]["groups"])
  assert chosen == best_val
  # Same networks, same chunk size: the pipeline's test totals are the table's, bit for bit.
  test_total = sum(float(table[g].test_loss[t]) for g in best_val for t in g)
  assert report["methods"]["oracle"]["total_test_loss"] == pytest.approx(test_total, abs=1e-12)


def test_hoa_gains_are_the_pairwise_validation_table(full_run):
  ts, _, wd, _ = full_run
  import json
  gains = np.array(json.load(open(os.path.join(wd, "gains_hoa.json")))["gains"])
  table = oracle.subset_table(ts, seeds=(0,), steps=30, quiet=True, chunk_size=4)
  for a, b in itertools.product(range(ts.num_tasks), repeat=2):
    g = (a,) if a == b else tuple(sorted((a, b)))
    assert gains[b, a] == pytest.approx(-table[g].val_loss[a], abs=1e-12)


def test_rerun_trains_nothing(full_run, monkeypatch):
  ts, config, wd, report = full_run
  from tgroup import evaluate
  monkeypatch.setattr(evaluate, "_train_chunk", lambda *a, **k: pytest.fail("retrained"))
  again = run_pipeline(ts, config, wd)
  assert again["methods"]["oracle"]["total_test_loss"] == report["methods"]["oracle"][
      "total_test_loss"]


def test_oracle_refuses_too_many_networks():
  ts = tiny_synthetic(2, 3)
  with pytest.raises(UserError, match="2\\^6 - 1 = 63 networks"):
    PipelineConfig(methods=("oracle",), max_oracle_networks=62).validate(ts)


def test_landscape_refuses_constraints_a_mixture_cannot_honour():
  ts = tiny_synthetic(2, 2)
  with pytest.raises(UserError, match="not max_group_size"):
    PipelineConfig(methods=("landscape",), constraints=Constraints(max_group_size=2)).validate(ts)
  PipelineConfig(methods=("landscape",), constraints=Constraints(max_groups=3)).validate(ts)


def test_table_methods_need_a_validation_split():
  ts = dataclasses.replace(tiny_synthetic(2, 2), val=None)
  with pytest.raises(UserError, match="validation split"):
    PipelineConfig(methods=("hoa", "stl")).validate(ts)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.booleans(), st.integers(0, 10_000), st.integers(0, 3))
def test_solve_measured_matches_brute_force(m, overlap, seed, k):
  rng = np.random.default_rng(seed)
  tasks = [f"t{i}" for i in range(m)]
  losses = {g: rng.uniform(0, 1, m).round(2) for g in oracle.all_subsets(m)}
  constraints = Constraints(num_groups=k or None)
  best = None
  if not overlap:
    for p in oracle.set_partitions(range(m)):
      if k and len(p) != k:
        continue
      total = sum(losses[tuple(sorted(b))][t] for b in p for t in b)
      best = total if best is None else min(best, total)
  else:
    # A cover: each task is served by one chosen network holding it, and every
    # chosen network serves some task; so enumerate who serves each task.
    options = [[g for g in losses if t in g] for t in range(m)]
    for serve in itertools.product(*options):
      if k and len(set(serve)) != k:
        continue
      total = sum(losses[g][t] for t, g in enumerate(serve))
      best = total if best is None else min(best, total)
  if best is None:
    with pytest.raises(InfeasibleError):
      solve_measured(tasks, losses, constraints, overlap=overlap)
    return
  g = solve_measured(tasks, losses, constraints, overlap=overlap)
  assert g.objective == pytest.approx(best, abs=1e-9)


def test_random_partitions_are_distinct_and_respect_constraints():
  tasks = list("abcdef")
  c = Constraints(cannot_link=[("a", "b")], max_group_size=3)
  parts = baselines.random_partitions(tasks, 2, draws=6, seed=3, constraints=c)
  assert len(parts) == len({tuple(p) for p in parts}) == 6
  for p in parts:
    assert sorted(t for g in p for t in g) == list(range(6))
    assert all(len(g) <= 3 and not {0, 1} <= set(g) for g in p)
  assert baselines.random_partitions(["a", "b"], 2, draws=5, seed=0) == [[(0,), (1,)]]


def test_spearman_matches_scipy():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=30), rng.normal(size=30)
  b[:5] = b[5]  # ties
  assert baselines.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
