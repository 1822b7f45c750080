"""Generated columns: feasible, constraint-abiding, deterministic, and good
enough to recover planted groups at sizes beyond exhaustive enumeration."""
import numpy as np
import pytest

import brute_force_grouping as bf
from tgroup.errors import InfeasibleError
from tgroup.grouping import Constraints, solve_grouping
from tgroup.grouping.candidates import build_candidates


def planted(num_clusters, per_cluster, seed, noise=0.3):
  """Tasks help their own cluster (+1) and hurt the others (-1), plus noise."""
  rng = np.random.default_rng(seed)
  label = np.repeat(np.arange(num_clusters), per_cluster)
  gains = np.where(label[:, None] == label[None, :], 1.0, -1.0)
  gains = gains + noise * rng.normal(size=gains.shape)
  tasks = tuple(f"t{i:02d}" for i in range(len(label)))
  truth = tuple(tuple(t for t, c in zip(tasks, label) if c == k)
                for k in range(num_clusters))
  return tasks, gains, truth


@pytest.mark.parametrize("objective, constraints, overlap", [
    ("marginal", Constraints(), False),
    ("principled", Constraints(num_groups=4), False),
    ("tag", Constraints(max_groups=4), True),
])
def test_planted_groups_recovered(objective, constraints, overlap):
  tasks, gains, truth = planted(4, 6, seed=1)
  result = solve_grouping(tasks, gains, objective, constraints,
                          overlap=overlap)
  assert result.candidates == "generated"  # 24 tasks: 2**24 subsets
  assert result.groups == truth


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("constraints", [
    Constraints(),
    Constraints(num_groups=2),
    Constraints(max_group_size=3, must_link=[("t0", "t5")],
                cannot_link=[("t1", "t2")], alone=["t7"]),
    Constraints(num_groups=3, min_group_size=2, cannot_link=[("t0", "t1")]),
])
def test_generated_is_a_valid_lower_bound(seed, constraints):
  rng = np.random.default_rng(seed)
  tasks = tuple(f"t{i}" for i in range(8))
  gains = rng.normal(size=(8, 8))
  exact = bf.best_partition(tasks, gains, "marginal", constraints)
  try:
    result = solve_grouping(tasks, gains, "marginal", constraints,
                            max_candidates=20, seed=seed)
  except InfeasibleError as e:
    # Generated columns may miss every feasible partition, but must say so.
    assert "generated candidates" in str(e)
    return
  assert result.candidates == "generated"
  bf.verify_grouping(result, gains, "marginal", constraints, overlap=False)
  assert exact is not None and result.objective <= exact + 1e-9
  # And they are not far off on small random problems.
  assert result.objective >= exact - 0.25 * abs(exact) - 1e-9


def test_generated_is_deterministic():
  tasks, gains, _ = planted(3, 7, seed=5, noise=1.5)
  runs = [solve_grouping(tasks, gains, "marginal", seed=3) for _ in range(2)]
  assert runs[0] == runs[1]


def test_candidate_rows_unique_and_allowed():
  tasks, gains, _ = planted(3, 8, seed=2)
  constraints = Constraints(max_group_size=8, cannot_link=[("t00", "t01")],
                            alone=["t23"])
  rows, kind = build_candidates(tasks, gains, "tag", constraints)
  assert kind == "generated"
  assert len(np.unique(rows, axis=0)) == len(rows)
  for row in rows:
    group = set(np.flatnonzero(row).tolist())
    assert bf.group_allowed(tasks, "tag", constraints, group)


def test_size_cap_keeps_enumeration_exhaustive():
  # 40 tasks with groups of at most 2: 820 candidates, all of them.
  tasks, gains, _ = planted(20, 2, seed=0)
  result = solve_grouping(tasks, gains, "marginal",
                          Constraints(max_group_size=2))
  assert result.candidates == "all"
  assert all(len(g) == 2 for g in result.groups)


def test_generated_infeasibility_names_constraints():
  tasks, gains, _ = planted(4, 6, seed=0)
  with pytest.raises(InfeasibleError, match="num_groups.*max_group_size"):
    solve_grouping(tasks, gains, "marginal",
                   Constraints(num_groups=2, max_group_size=6))
