"""launch.summarize's ground-truth separation of a gains matrix."""
import numpy as np

from launch.summarize import separation
from tgroup.gains import Gains


def test_separation_is_the_worst_column_margin_and_skips_uncollected_entries():
  g = np.array([[0.0, 0.5, 0.1],
                [0.4, 0.0, 0.2],
                [0.3, 0.1, 0.0]])
  counts = np.ones((3, 3), int) - np.eye(3, dtype=int)  # diagonal never collected
  gains = Gains(("a", "b", "c"), "principled_marginal", g, counts)
  # column a: own {b} 0.4 vs other {c} 0.3 -> +0.1; column b: own {a} 0.5 vs 0.1 -> +0.4;
  # column c (alone): no own entries collected, skipped.
  assert np.isclose(separation(gains, [["a", "b"], ["c"]]), 0.1)
  assert np.isclose(separation(gains, [["a", "c"], ["b"]]), 0.1 - 0.2)
