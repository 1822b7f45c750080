"""The synthetic benchmark's planted structure is real (slow: trains every subset).

For each layout and seed, train every non-empty task subset once with the
benchmark's own protocol and check that the planted partition has the lowest
total validation loss and the lowest total test loss among all partitions with as
many groups, and beats STL and MTL-all on test. Run with
``pytest -m slow tests/test_planted.py -s`` (prints margins).
"""
import pytest

from tgroup.methods import oracle
from tgroup.benchmarks import synthetic


# Measured: on test, the planted partition of 2 x 4, seed 1, ties {c0 + c1_t2} {rest of c1}
# (1.060283 vs 1.060281, a 2e-6 difference on 4096 test samples) while it is best on
# validation by 0.018. Such a case must stay a tie: planted within TIE of the best.
TIES = {(2, 4, 1)}
TIE = 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("clusters,per_cluster", [(2, 3), (2, 4), (3, 3)])
@pytest.mark.parametrize("seed", range(5))
def test_planted_partition_is_best(clusters, per_cluster, seed):
  ts = synthetic.synthetic(clusters, per_cluster, seed=seed)
  m = ts.num_tasks
  table = oracle.subset_table(ts, seeds=(seed,), quiet=True)
  ranked = oracle.ranked_partitions(table, m, num_groups=clusters)
  planted = sorted(tuple(ts.tasks.index(t) for t in g) for g in ts.ground_truth_groups)
  planted_total = next(total for total, p in ranked if p == planted)
  (stl,) = [t for t, p in oracle.ranked_partitions(table, m, m)]
  (mtl,) = [t for t, p in oracle.ranked_partitions(table, m, 1)]
  runner_up = next(total for total, p in ranked if p != planted)
  by_val = oracle.ranked_partitions(table, m, num_groups=clusters, key="val_loss")
  print(f"\n{clusters}x{per_cluster} seed {seed}: planted {planted_total:.6f}, best other "
        f"partition with {clusters} groups {runner_up:.6f}, STL {stl:.4f}, MTL-all {mtl:.4f}; "
        f"validation: planted ranks {[p for _, p in by_val].index(planted) + 1}")
  assert by_val[0][1] == planted
  if (clusters, per_cluster, seed) in TIES:
    assert planted_total - ranked[0][0] < TIE
  else:
    assert ranked[0][1] == planted
  assert planted_total < min(stl, mtl)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a_32_wide_trunk_would_not_plant_the_structure(seed):
  """Why the benchmark's trunk is 16 wide: at 32 a merge of two clusters beats the planted
  partition (pooled supervision outweighs capacity competition)."""
  ts = synthetic.synthetic(3, 3, seed=seed, trunk_width=32)
  table = oracle.subset_table(ts, seeds=(seed,), quiet=True)
  ranked = oracle.ranked_partitions(table, ts.num_tasks, num_groups=3)
  planted = sorted(tuple(ts.tasks.index(t) for t in g) for g in ts.ground_truth_groups)
  planted_total = next(total for total, p in ranked if p == planted)
  best_any = oracle.ranked_partitions(table, ts.num_tasks)[0]
  print(f"\n3x3 seed {seed}, 32-wide: planted {planted_total:.4f}, best 3-group partition "
        f"{ranked[0][0]:.4f} {ranked[0][1]}, best partition {best_any[0]:.4f} {best_any[1]}")
  assert best_any[0] < planted_total
