"""Collection at many tasks: pair counts under control, first-order estimates, 100 tasks."""
import numpy as np
import pytest

from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.gains import CollectConfig, collect_gains
from tgroup.gains import schedule


def tiny(num_clusters, tasks_per_cluster):
  return synthetic.synthetic(num_clusters, tasks_per_cluster, num_train=128, num_val=16,
                             num_test=16, batch_size=32, trunk_width=8)


def test_pairs_draws_give_every_pair_its_count_and_gains_json_reports_it():
  ts = tiny(3, 3)
  rounds = len(schedule.pair_cover(9, 3))
  config = CollectConfig(steps=2 * rounds, sample_tasks=3, sample_bias="pairs",
                         min_pair_count=2, quiet=True)
  gains = collect_gains(ts, config)["principled"]
  off = ~np.eye(9, dtype=bool)
  assert gains.counts[off].min() == 2   # two whole rounds: at least two each, some more
  assert gains.settings["pair_counts"]["min"] == 2
  assert gains.settings["pair_counts"]["max"] == gains.counts[off].max()
  assert gains.settings["min_pair_count"] == 2 and gains.settings["sample_bias"] == "pairs"


def test_uniform_draws_leave_some_pairs_short_where_pairs_draws_do_not():
  """The control: the same number of uniformly drawn steps misses pairs."""
  ts = tiny(3, 3)
  steps = len(schedule.pair_cover(9, 3))
  counts = lambda bias: collect_gains(ts, CollectConfig(
      steps=steps, sample_tasks=3, sample_bias=bias, quiet=True))["principled"].counts
  off = ~np.eye(9, dtype=bool)
  assert counts("pairs")[off].min() == 1 and counts("uniform")[off].min() == 0


def test_a_pair_count_the_steps_cannot_reach_is_refused_before_training():
  config = CollectConfig(steps=10, sample_tasks=3, sample_bias="pairs", min_pair_count=1,
                         quiet=True)
  with pytest.raises(UserError, match=r"min_pair_count=1 needs 14 training steps .*has 10"):
    collect_gains(tiny(3, 3), config)
  with pytest.raises(UserError, match="needs sample_bias=pairs"):
    CollectConfig(sample_tasks=3, min_pair_count=1).validate(9)
  # Every task drawn: r collected steps give every pair r counts.
  assert CollectConfig(min_pair_count=3, collect_every=5).steps_for_pair_count(9) == 11


def test_principled_falls_back_to_first_order_above_max_lookaheads_and_says_so():
  ts = tiny(2, 3)   # 6 tasks: 21 principled lookaheads per step
  both = collect_gains(ts, CollectConfig(measures=("principled", "first_order"), steps=3,
                                         max_lookaheads=20, quiet=True))
  np.testing.assert_allclose(both["principled"].gains, both["first_order"].gains, rtol=1e-6)
  settings = both["principled"].settings
  assert settings["principled_estimate"] == "first_order"
  assert "21 lookaheads per collected step exceed max_lookaheads=20" in (
      settings["principled_estimate_reason"])
  exact = collect_gains(ts, CollectConfig(steps=3, max_lookaheads=21, quiet=True))["principled"]
  assert "principled_estimate" not in exact.settings
  assert not np.allclose(exact.gains, both["principled"].gains)


def test_landscape_groups_100_planted_tasks():
  from tgroup.landscape import cluster, measure  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  ts = synthetic.synthetic(10, 10, num_train=256, num_val=16, num_test=16)
  d = measure.landscape_dissimilarity(ts, num_samples=256, batch_size=256)
  found = cluster.landscape_groups(d, ts.tasks, jax.random.key(0), num_groups=10)
  assert sorted(map(tuple, found["groups"])) == sorted(ts.ground_truth_groups)


def test_a_network_of_many_tasks_is_saved_under_a_short_file_name(tmp_path):
  """The all-tasks network of 100 tasks: its indices alone would exceed file name limits."""
  from tgroup.evaluate import NetworkResult  # pylint: disable=g-import-not-at-top
  from tgroup.netcache import NetworkCache  # pylint: disable=g-import-not-at-top
  cache = NetworkCache(str(tmp_path), {"benchmark": "toy"})
  every, most = tuple(range(100)), tuple(range(99))
  cache.put(every, 0, NetworkResult(every, np.ones(100), np.ones(100), None, None, 2.0))
  cache.put(most, 0, NetworkResult(most, np.ones(99), np.ones(99), None, None, 3.0))
  assert cache.get(every, 0).seconds == 2.0 and cache.get(most, 0).seconds == 3.0
  assert cache.get(every, 1) is None
  assert max(len(p.name) for p in tmp_path.rglob("*.json")) < 80
