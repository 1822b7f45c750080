"""The one Spearman rank correlation, against its definition and against scipy."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from tgroup.stats import spearman


def test_spearman_matches_the_definition_with_ties():
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 4, 30).astype(float), rng.normal(size=30)  # a has many ties

  def ranks(x):  # average ranks, by brute force
    return np.array([np.sum(x < v) + (np.sum(x == v) - 1) / 2 for v in x])

  expected = np.corrcoef(ranks(a), ranks(b))[0, 1]
  assert spearman(a, b) == pytest.approx(expected, abs=1e-12)
  assert spearman(b, 3 * b + 1) == pytest.approx(1.0)


def test_spearman_matches_scipy():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=30), rng.normal(size=30)
  b[:5] = b[5]  # ties
  assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_of_a_constant_vector_is_undefined():
  assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
  assert np.isnan(spearman(np.arange(5.0), np.full(5, 2.0)))
