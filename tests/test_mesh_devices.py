"""One run on 8 faked CPU devices equals the single-device run, on every mesh.

The runs happen in one subprocess (mesh_worker.py), since XLA fixes the number
of CPU devices when it starts, and in one test, so that a parallel test run
pays for them once. "Equal" is max|Δ| / max|x| ≤ 1e-5 for every gains matrix,
landscape dissimilarity and group network's losses (a mesh changes the order of
floating-point sums, nothing else), and identical groups. Training is 30 steps:
longer training amplifies last-bit differences the way any change of summation
order does (docs/accelerators.md measures both).
"""
import json
import os
import subprocess
import sys

import numpy as np

MESHES = ("data:8", "combos:8", "data:4,combos:2", "networks:8")
GAINS = ("principled_marginal", "tag", "landscape_dissimilarity")  # principled: marginal
GROUPED = ("principled", "tag", "landscape", "oracle")
STAGES = ("run_collection", "landscape_dissimilarity", "train_networks", "evaluate")
HERE = os.path.dirname(os.path.abspath(__file__))


def relative(a, b) -> float:
  a, b = np.asarray(a, float), np.asarray(b, float)
  return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(a)))


def test_every_mesh_gives_the_single_device_results(tmp_path):
  # XLA's cheapest CPU code generation (30% less CPU here): the same for every run compared.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8 "
             "--xla_backend_optimization_level=0")
  proc = subprocess.run([sys.executable, os.path.join(HERE, "mesh_worker.py"), str(tmp_path),
                         "none", *MESHES], cwd=HERE, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  read = lambda mesh, name: json.loads((tmp_path / mesh / name).read_text())
  assert set(map(tuple, read("none", "devices.json").values())) == {(1,)}
  one = {tuple(n["group"]): n for n in read("none", "oracle/table.json")["networks"]}
  assert len(one) == 15  # every subset of 4 tasks: 2 chunks of 8 networks
  per_task = lambda m: [[e["per_task"][t]["test_loss"] for t in sorted(e["per_task"])]
                        for e in read(m, "report.json")["methods"].values()]
  wrong = []
  for mesh in MESHES:
    # The mesh was used: each stage's results lived on 8 devices (not silently on one).
    if read(mesh, "devices.json") != {stage: [8] for stage in STAGES}:
      wrong.append(f"{mesh}: devices {read(mesh, 'devices.json')}")
    for measure in GAINS:
      name = f"gains_{measure}.json"
      if (r := relative(read("none", name)["gains"], read(mesh, name)["gains"])) > 1e-5:
        wrong.append(f"{mesh}: {name} differs by {r:.2g}")
    many = {tuple(n["group"]): n for n in read(mesh, "oracle/table.json")["networks"]}
    for key in ("test_loss", "val_loss", "test_metric"):
      if set(many) != set(one):
        wrong.append(f"{mesh}: oracle networks {sorted(many)}")
      elif (r := relative([one[g][key] for g in one], [many[g][key] for g in one])) > 1e-5:
        wrong.append(f"{mesh}: oracle networks' {key} differ by {r:.2g}")
    if (r := relative(per_task("none"), per_task(mesh))) > 1e-5:
      wrong.append(f"{mesh}: the report's per-task test losses differ by {r:.2g}")
    for method in GROUPED:
      name = f"groups_{method}.json"
      if read(mesh, name)["groups"] != read("none", name)["groups"]:
        wrong.append(f"{mesh}: {method} chose {read(mesh, name)['groups']}")
  assert not wrong, "\n".join(wrong)

  # Sharding divides per-device memory (compiled memory analysis, launch.bench_mesh, on a
  # model whose weights dominate, and for data on a long batch): else a mesh could be
  # "used" and still replicate everything.
  fig = json.loads((tmp_path / "memory.json").read_text())
  ratio = lambda name: fig[f"{name}8"] / fig[f"{name}1"]
  assert ratio("train_networks") < 0.2       # 8 networks over 8 devices: ≈ 1/8 each
  assert ratio("collect_vmap_combos") < 0.5  # the m(m+1)/2 lookahead copies split
  assert ratio("collect_map_data") < 0.6     # a batch's activations split
