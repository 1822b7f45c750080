"""The pair-cover schedule: every pair of tasks drawn together once per round."""
import itertools

import numpy as np
import pytest

from tgroup.errors import UserError
from tgroup.gains import schedule


@pytest.mark.parametrize("m,s", [(2, 2), (5, 2), (6, 3), (9, 3), (9, 9), (13, 4), (40, 10),
                                 (100, 10)])
def test_a_round_covers_every_pair_with_distinct_sorted_tasks(m, s):
  cover = schedule.pair_cover(m, s, seed=1)
  assert cover.shape[1] == s and cover.dtype == np.int32
  assert (np.diff(cover, axis=1) > 0).all()  # distinct, sorted
  held = {pair for row in cover.tolist() for pair in itertools.combinations(row, 2)}
  assert held == set(itertools.combinations(range(m), 2))
  # Never shorter than the bound (a check on the bound), and not far above it.
  assert schedule.schonheim_bound(m, s) <= len(cover) <= 1.6 * schedule.schonheim_bound(m, s)


def test_rounds_are_near_the_bound_where_designs_are_known():
  # s = 2: every draw is one pair, so a round is exactly the m(m-1)/2 pairs.
  assert len(schedule.pair_cover(7, 2)) == 21
  # A Steiner triple system exists for 7 and 9 tasks (7 and 12 triples); greedy
  # comes within a few draws of it.
  assert len(schedule.pair_cover(7, 3)) <= 9 and len(schedule.pair_cover(9, 3)) <= 15


def test_tasks_are_drawn_evenly_and_the_seed_only_breaks_ties():
  cover = schedule.pair_cover(100, 10, seed=0)
  drawn = np.bincount(cover.ravel(), minlength=100)
  assert drawn.min() >= 0.7 * drawn.mean() and drawn.max() <= 1.4 * drawn.mean()
  np.testing.assert_array_equal(cover, schedule.pair_cover(100, 10, seed=0))
  assert abs(len(schedule.pair_cover(100, 10, seed=1)) - len(cover)) <= 0.1 * len(cover)


def test_pair_counts_after_whole_rounds_reach_the_round_count():
  cover = schedule.pair_cover(12, 4)
  counts = schedule.pair_counts(np.concatenate([cover] * 3), 12)
  off = ~np.eye(12, dtype=bool)
  assert counts[off].min() >= 3 and (np.diag(counts) == 0).all()


def test_steps_for_pair_count_is_the_last_collected_step_plus_one():
  # Collected steps are 0, k, 2k, ...: r rounds of L draws end at step (rL - 1)k.
  assert schedule.steps_for_pair_count(5, 1) == 5
  assert schedule.steps_for_pair_count(5, 2, collect_every=3) == (10 - 1) * 3 + 1


@pytest.mark.parametrize("s", [1, 7])
def test_impossible_draw_sizes_are_user_errors(s):
  with pytest.raises(UserError, match="sample_tasks"):
    schedule.pair_cover(6, s)
