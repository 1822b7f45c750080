"""An independent solver (scipy's HiGHS) agrees with CBC on the same models."""
import numpy as np
import pytest
from scipy import optimize, sparse

import brute_force_grouping as bf
from tgroup.grouping import Constraints, solve_grouping

OBJECTIVES = ("principled", "marginal", "tag", "hoa")


def _subsets(m, objective):
  return [[i for i in range(m) if mask >> i & 1] for mask in range(1, 2**m)
          if objective != "tag" or bin(mask).count("1") >= 2]


def _highs(c, a_rows, lower, upper):
  """Maximises c·x over binaries x with lower <= A x <= upper."""
  res = optimize.milp(
      -np.asarray(c), integrality=np.ones(len(c)),
      bounds=optimize.Bounds(0, 1),
      constraints=optimize.LinearConstraint(sparse.csr_array(np.array(a_rows)),
                                            lower, upper),
      options={"mip_rel_gap": 0.0})
  assert res.status == 0, res.message
  return -res.fun


def highs_partition(gains, objective, num_groups=None):
  m = len(gains)
  groups = _subsets(m, objective)
  value = [bf.group_score(gains, objective, g) for g in groups]
  rows = [[float(t in g) for g in groups] for t in range(m)]
  lower, upper = [1.0] * m, [1.0] * m
  if num_groups is not None:
    rows.append([1.0] * len(groups))
    lower.append(num_groups)
    upper.append(num_groups)
  return _highs(value, rows, lower, upper)


def highs_cover(gains, objective, max_groups):
  """x_S for each group, then a_{t,S} for each membership."""
  m = len(gains)
  groups = _subsets(m, objective)
  pairs = [(t, s) for s, g in enumerate(groups) for t in g]
  n = len(groups) + len(pairs)
  value = [0.0] * len(groups) + [
      bf.task_score(gains, objective, groups[s], t) for t, s in pairs]
  rows, lower, upper = [], [], []

  def add(coeffs, lo, hi):
    row = [0.0] * n
    for k, v in coeffs:
      row[k] += v
    rows.append(row)
    lower.append(lo)
    upper.append(hi)

  for t in range(m):
    add([(len(groups) + k, 1.0) for k, (u, _) in enumerate(pairs) if u == t],
        1, 1)
  for k, (t, s) in enumerate(pairs):
    add([(len(groups) + k, 1.0), (s, -1.0)], -np.inf, 0)
  for s in range(len(groups)):
    add([(len(groups) + k, 1.0) for k, (_, u) in enumerate(pairs) if u == s]
        + [(s, -1.0)], 0, np.inf)
  add([(s, 1.0) for s in range(len(groups))], -np.inf, max_groups)
  return _highs(value, rows, lower, upper)


@pytest.mark.parametrize("seed", range(12))
def test_partition_agrees_with_highs(seed):
  rng = np.random.default_rng(seed)
  m = 3 + seed % 6  # every size from 3 to 8
  objective = OBJECTIVES[seed % len(OBJECTIVES)]
  gains = rng.normal(size=(m, m))
  num_groups = None
  if seed % 2 or objective == "principled":
    num_groups = int(rng.integers(1, m // 2 + 1))
  tasks = [f"t{i}" for i in range(m)]
  result = solve_grouping(tasks, gains, objective,
                          Constraints(num_groups=num_groups))
  expected = highs_partition(gains, objective, num_groups)
  assert result.objective == pytest.approx(expected, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_cover_agrees_with_highs(seed):
  rng = np.random.default_rng(100 + seed)
  m = 3 + seed % 3
  objective = OBJECTIVES[seed % len(OBJECTIVES)]
  gains = rng.normal(size=(m, m))
  max_groups = int(rng.integers(1, m))
  tasks = [f"t{i}" for i in range(m)]
  result = solve_grouping(tasks, gains, objective,
                          Constraints(max_groups=max_groups), overlap=True)
  expected = highs_cover(gains, objective, max_groups)
  assert result.objective == pytest.approx(expected, rel=1e-7, abs=1e-7)
