"""launch.bench's landscape section runs and reports consistent figures (no timing
assertions: performance is read off the benchmark, not tested)."""
import numpy as np

from conftest import tiny_synthetic
from launch import bench


def test_landscape_figures_are_consistent():
  ts = tiny_synthetic(2, 2)
  ms = bench.landscape_figures(ts, rounds=1)
  assert set(ms) == {"landscape_fast_ms", "landscape_materialized_ms",
                     "landscape_general_heads_ms", "landscape_speedup"}
  assert all(np.isfinite(v) and v > 0 for v in ms.values())
  assert np.isclose(ms["landscape_speedup"],
                    ms["landscape_materialized_ms"] / ms["landscape_fast_ms"])


def test_data_to_groups_runs_the_landscape_method():
  assert bench.data_to_groups_seconds("landscape", 2, 2) > 0
