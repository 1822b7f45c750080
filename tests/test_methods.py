"""The comparison methods: oracle, HOA, random, cosine/first-order, regret.

The report's derived figures (regret, Spearman, adjusted Rand index, the
within/across ratio) are recomputed here from the files the run wrote, by
definitions that share no code with tgroup.
"""
import dataclasses
import itertools
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import brute_force_grouping as bf
from conftest import tiny_synthetic
from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping import Constraints, solve_measured
from tgroup.methods import baselines, oracle
from tgroup.pipeline import PipelineConfig, run_pipeline

ALL = ("principled", "tag", "cosine", "first_order", "hoa", "landscape", "random", "oracle", "stl",
       "mtl_all")
COVERS = ("tag", "cosine", "hoa")  # the methods whose groups may overlap


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  ts = tiny_synthetic(2, 2, train_steps=30)
  wd = str(tmp_path_factory.mktemp("methods"))
  # The paper's self-pair form: first_order expands it, and its report compares the two.
  config = PipelineConfig(methods=ALL, constraints=Constraints(num_groups=2), quiet=True,
                          chunk_size=4, random_draws=3, principled_form="self_pair")
  return ts, config, wd, run_pipeline(ts, config, wd)


def read(wd, name):
  with open(os.path.join(wd, name)) as f:
    return json.load(f)


def rand_index_adjusted(a, b):
  """Hubert and Arabie's adjusted Rand index, from the pair counts of its definition."""
  pairs = list(itertools.combinations(range(len(a)), 2))
  both = sum(a[i] == a[j] and b[i] == b[j] for i, j in pairs)
  in_a = sum(a[i] == a[j] for i, j in pairs)
  in_b = sum(b[i] == b[j] for i, j in pairs)
  expected = in_a * in_b / len(pairs)
  top = (in_a + in_b) / 2
  return 1.0 if top == expected else (both - expected) / (top - expected)


def oracle_test_total(wd, tasks, k, cover):
  """The oracle's test total with k groups: best on validation by brute force, scored on test."""
  networks = {tuple(n["group"]): n for n in read(wd, "oracle/table.json")["networks"]}
  m = len(tasks)
  if cover:  # every task picks its serving network; exactly k distinct networks chosen
    choices = itertools.product(*[[g for g in networks if t in g] for t in range(m)])
    served = [dict(enumerate(c)) for c in choices if len(set(c)) == k]
  else:
    served = [{t: tuple(sorted(b)) for b in p for t in b}
              for p in bf.set_partitions(list(range(m))) if len(p) == k]
  val = lambda s: math.fsum(networks[g]["val_loss"][t] for t, g in s.items())
  best = min(served, key=val)
  return math.fsum(networks[g]["test_loss"][t] for t, g in best.items())


def test_every_method_is_reported_with_its_regret(full_run):
  ts, _, wd, report = full_run
  assert list(report["methods"]) == list(ALL)
  for name, e in report["methods"].items():
    assert {t for g in e["groups"] for t in g} == set(ts.tasks), name
    if name in ("stl", "mtl_all"):  # the only partitions with m and 1 groups: no comparison
      assert e["regret"] is None, name
      continue
    cover = name in COVERS
    expected = e["total_test_loss"] - oracle_test_total(wd, ts.tasks, len(e["groups"]), cover)
    assert e["regret"] == pytest.approx(expected, abs=1e-9), name
  assert report["methods"]["oracle"]["regret"] == 0.0
  assert len(report["methods"]["random"]["draws"]) == 3
  for f in ("gains_cosine.json", "gains_first_order.json", "gains_hoa.json",
            "gains_landscape_dissimilarity.json", "landscape.json",
            os.path.join("oracle", "table.json"), "groups_oracle.json", "groups_hoa.json"):
    assert os.path.exists(os.path.join(wd, f)), f


def test_every_method_reports_what_choosing_its_groups_cost(full_run):
  ts, _, _, report = full_run
  m = ts.num_tasks
  want = {"principled": 1, "tag": 1, "cosine": 1, "first_order": 1, "hoa": m * (m - 1) // 2,
          "landscape": 0, "random": 0, "oracle": 2 ** m - 1 - m, "stl": 0, "mtl_all": 0}
  for name, e in report["methods"].items():
    assert e["cost"]["networks"] == want[name], name
    assert e["cost"]["seconds"] == pytest.approx(e["seconds"]["collect"] + e["seconds"]["group"])
  assert report["methods"]["oracle"]["cost"]["seconds"] > report["methods"]["hoa"]["cost"][
      "seconds"] > 0


def test_the_oracles_best_partition_for_every_number_of_groups_is_reported(full_run):
  ts, _, wd, report = full_run
  by_k = report["oracle_by_num_groups"]
  assert [o["num_groups"] for o in by_k] == list(range(1, ts.num_tasks + 1))
  for o in by_k:
    k = o["num_groups"]
    assert len(o["groups"]) == k and sorted(t for g in o["groups"] for t in g) == sorted(ts.tasks)
    assert o["total_test_loss"] == pytest.approx(oracle_test_total(wd, ts.tasks, k, False),
                                                 abs=1e-9)
  # The extremes are MTL-all's and STL's partitions.
  assert by_k[0]["total_test_loss"] == pytest.approx(
      report["methods"]["mtl_all"]["total_test_loss"], abs=1e-9)
  assert by_k[-1]["total_test_loss"] == pytest.approx(
      report["methods"]["stl"]["total_test_loss"], abs=1e-9)


def test_first_order_reports_its_rank_agreement_with_principled(full_run):
  _, _, wd, report = full_run
  first, exact = (np.array(read(wd, f"gains_{x}.json")["gains"]).ravel()
                  for x in ("first_order", "principled"))
  assert report["methods"]["first_order"]["spearman_with_principled"] == pytest.approx(
      stats.spearmanr(first, exact).statistic, abs=1e-12)


def test_ground_truth_fields_follow_their_definitions(full_run):
  ts, _, wd, report = full_run
  truth = {t: k for k, g in enumerate(report["ground_truth_groups"]) for t in g}
  for name, e in report["methods"].items():
    served = {}
    for k, g in enumerate(e["groups"]):  # a cover's task is served by its first group here
      for t in g:
        served.setdefault(t, k)
    if name in COVERS:
      served = {t: k for t, k in read(wd, f"groups_{name}.json")["assignment"].items()}
    labels = [served[t] for t in ts.tasks]
    assert e["adjusted_rand_index"] == pytest.approx(
        rand_index_adjusted([truth[t] for t in ts.tasks], labels), abs=1e-12), name
    planted = sorted(map(sorted, report["ground_truth_groups"]))
    assert e["matches_ground_truth"] == (sorted(map(sorted, e["groups"])) == planted), name
  assert len(report["methods"]["landscape"]["groups"]) == 2
  d = np.array(read(wd, "gains_landscape_dissimilarity.json")["gains"])
  same = np.array([[truth[a] == truth[b] for b in ts.tasks] for a in ts.tasks])
  within = d[same & ~np.eye(len(ts.tasks), dtype=bool)].mean()
  assert report["methods"]["landscape"]["within_across_ratio"] == pytest.approx(
      within / d[~same].mean(), rel=1e-12)


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
