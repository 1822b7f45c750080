"""Runs one small pipeline per mesh, in one process with 8 faked CPU devices.

Used by test_mesh_devices.py in a subprocess whose environment fakes the
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``; XLA reads it
once): ``python mesh_worker.py WORKDIR MESH [MESH ...]``, where ``none``
means no mesh. Each run writes its usual files under ``WORKDIR/<mesh>``, plus
``devices.json``: for each function that waited on a multi-device result
(tgroup.mesh.settle), the numbers of devices its results lived on, so the test
can tell a mesh that was used from one that was silently ignored. Then
``WORKDIR/memory.json``: per-device bytes (launch.bench_mesh) on a wide model (a long batch
for data sharding).
"""
import collections
import json
import os
import sys

import jax

from conftest import tiny_synthetic
from launch import bench_mesh
from tgroup import mesh as mesh_lib
from tgroup.benchmarks import synthetic
from tgroup.grouping import Constraints
from tgroup.pipeline import PipelineConfig, run_pipeline

METHODS = ("principled", "tag", "landscape", "oracle", "stl", "mtl_all")


def main(workdir: str, meshes: list[str]) -> None:
  assert len(jax.devices()) == 8, jax.devices()
  taskset = tiny_synthetic(2, 2, train_steps=30)
  settle = mesh_lib.settle
  for mesh in meshes:
    seen = collections.defaultdict(set)

    def recording(tree, on, seen=seen):
      caller = sys._getframe(1).f_code.co_name  # pylint: disable=protected-access
      for leaf in jax.tree.leaves(tree):
        seen[caller].add(len(leaf.sharding.device_set))
      return settle(tree, on)

    mesh_lib.settle = recording
    config = PipelineConfig(methods=METHODS, constraints=Constraints(num_groups=2), quiet=True,
                            chunk_size=8, mesh=None if mesh == "none" else mesh)
    run_pipeline(taskset, config, os.path.join(workdir, mesh))
    with open(os.path.join(workdir, mesh, "devices.json"), "w") as f:
      json.dump({k: sorted(v) for k, v in seen.items()}, f)
  mesh_lib.settle = settle
  wide = synthetic.synthetic(3, 3, trunk_width=256)
  # Data sharding splits a batch's activations: measured where they dominate (backward
  # rows go one at a time under map, so at batch 256 the weights' Jacobian does).
  long_batch = synthetic.synthetic(3, 3, batch_size=4096)
  memory = {}
  for n in (1, 8):
    memory[f"train_networks{n}"] = bench_mesh.train_chunk_bytes(
        wide, mesh_lib.MeshSpec(networks=n), chunk_size=8)
    memory[f"collect_vmap_combos{n}"] = bench_mesh.collect_step_bytes(
        wide, mesh_lib.MeshSpec(combos=n), strategy="vmap")
    memory[f"collect_map_data{n}"] = bench_mesh.collect_step_bytes(
        long_batch, mesh_lib.MeshSpec(data=n), strategy="map")
  with open(os.path.join(workdir, "memory.json"), "w") as f:
    json.dump(memory, f)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
