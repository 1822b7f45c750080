"""launch.bench's landscape section runs and reports consistent figures (no timing
assertions: performance is read off the benchmark, not tested). Run as a subprocess,
as a user would, so its absl flags stay out of the test process."""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_landscape_section_writes_consistent_figures(tmp_path):
  out = tmp_path / "bench.json"
  subprocess.run([sys.executable, "-m", "launch.bench", "--sections=landscape", "--rounds=1",
                  "--num_clusters=2", "--tasks_per_cluster=2", f"--output={out}"],
                 cwd=ROOT, check=True, capture_output=True, text=True)
  result = json.loads(out.read_text())
  ms = result["figures"]
  assert set(ms) == {"landscape_fast_ms", "landscape_materialized_ms", "landscape_per_task_ms",
                     "landscape_general_heads_ms", "landscape_speedup",
                     "landscape_speedup_per_task"}
  assert all(np.isfinite(v) and v > 0 for v in ms.values())
  assert np.isclose(ms["landscape_speedup"],
                    ms["landscape_materialized_ms"] / ms["landscape_fast_ms"], rtol=1e-3)
  assert np.isclose(ms["landscape_speedup_per_task"],
                    ms["landscape_materialized_ms"] / ms["landscape_per_task_ms"], rtol=1e-3)
  assert result["settings"]["num_tasks"] == 4 and result["device"]


def test_data_to_groups_runs_the_landscape_method_and_splits_its_time():
  code = ("import json; from launch import bench; "
          "print(json.dumps(bench.data_to_groups_seconds('landscape', 2, 2)))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                        capture_output=True, text=True)
  parts = json.loads(proc.stdout.splitlines()[-1])
  assert set(parts) == {"total_s", "trace_s", "lower_s", "compile_s", "other_s"}
  assert parts["total_s"] > 0
  # A cold process compiles the landscape programs, so each stage took time,
  # the stages fit inside the total, and they do not overlap: with "other" being
  # what no stage covers, the four add up to the total only if no time is
  # counted under two stages.
  assert all(parts[k] > 0 for k in ("trace_s", "lower_s", "compile_s"))
  assert parts["other_s"] >= 0
  assert np.isclose(sum(v for k, v in parts.items() if k != "total_s"), parts["total_s"])


def test_collection_figures_on_a_mesh_and_a_mesh_that_does_not_fit(tmp_path):
  out = tmp_path / "bench.json"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  args = [sys.executable, "-m", "launch.bench", "--sections=collection", "--rounds=1",
          "--num_clusters=2", "--tasks_per_cluster=2", f"--output={out}"]
  subprocess.run(args + ["--mesh=auto"], cwd=ROOT, env=env, check=True, capture_output=True,
                 text=True)
  result = json.loads(out.read_text())
  assert result["settings"]["mesh"] == "auto" and result["device"].endswith("× 2 devices")
  assert all(np.isfinite(v) and v > 0 for v in result["figures"].values())
  proc = subprocess.run(args + ["--mesh=data:4"], cwd=ROOT, env=env, capture_output=True,
                        text=True)
  assert proc.returncode != 0 and "--mesh=data:4 spans 4 devices, but this run has 2" in proc.stderr


def test_scaling_section_writes_curves_and_a_plot(tmp_path):
  out = tmp_path / "bench.json"
  subprocess.run([sys.executable, "-m", "launch.bench", "--sections=scaling", "--rounds=1",
                  "--scaling_tasks=5,9", "--scaling_measures=collect,landscape,mip",
                  f"--output={out}"], cwd=ROOT, check=True, capture_output=True, text=True)
  result = json.loads(out.read_text())
  figures = result["figures"]
  for m in (5, 9):
    for name in ("train_step", "collect_exact", "collect_sampled", "collect_first_order"):
      assert figures[f"{name}_ms[{m}]"] > 0 and figures[f"{name}_bytes[{m}]"] > 0
    assert figures[f"landscape_ms[{m}]"] > 0 and figures[f"mip_s[{m}]"] > 0
    assert figures[f"mip_gap[{m}]"] == 0 and figures[f"mip_optimal[{m}]"] == 1
  assert result["settings"]["scaling"]["tasks"] == [5, 9]
  assert (tmp_path / "bench_scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_scaling_section_refuses_an_unknown_measure_in_one_line():
  proc = subprocess.run([sys.executable, "-m", "launch.bench", "--sections=scaling",
                         "--scaling_measures=collect,speed"], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: unknown scaling measure(s) ['speed']; known: collect, landscape, mip, end_to_end"]
