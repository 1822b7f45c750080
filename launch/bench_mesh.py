"""Per-device memory of one collection step and one chunk of group training on a mesh.

What sharding buys on one host is memory: XLA's compiled memory analysis of
each program, as SPMD-partitioned for one device, gives the bytes a device
holds while it runs (arguments + outputs + temporaries − donated aliases).
Programs are compiled, never run, so figures come from abstract arrays and
cost no device memory.

Figures, for n devices on one axis (``launch.bench --sections=mesh``):
  collect_<strategy>_combos<n>_bytes  one principled collection step with its
                                      m(m+1)/2 lookaheads split over combos:n
  collect_<strategy>_data<n>_bytes    the same step with its batch split over data:n
  train_networks<n>_bytes             one step of a chunk of group networks
                                      split over networks:n
  train_data<n>_bytes                 the same step with its batch split over data:n
  *_ratio                             each over its one-device figure
  *_communicated                      numbers (array elements) one device sends
                                      through collectives per step: the operands
                                      of the compiled program's all-reduce,
                                      all-gather, reduce-scatter, all-to-all and
                                      collective-permute instructions
"""
from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from tgroup import mesh as mesh_lib
from tgroup import train
from tgroup.gains import lookahead

DEVICE_COUNTS = (1, 2, 4, 8)


def _abstract(tree, sharding):
  """Shape-only stand-ins for ``tree``'s arrays, placed with ``sharding``."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


_COLLECTIVE = re.compile(r"= (.+?) (?:all-reduce|all-gather|reduce-scatter|all-to-all|"
                         r"collective-permute)(?:-start)?\(")
_SHAPE = re.compile(r"\b[a-z][a-z0-9]*\[([0-9,]*)\]")


def communicated(compiled) -> int:
  """Array elements in the results of the collectives of ``compiled`` (its HLO text)."""
  total = 0
  for line in compiled.as_text().splitlines():
    found = _COLLECTIVE.search(line)
    if found:
      for dims in _SHAPE.findall(found.group(1)):
        total += int(np.prod([int(d) for d in dims.split(",") if d]))
  return total


def device_bytes(compiled) -> int:
  """What one device holds while ``compiled`` runs, from XLA's memory analysis."""
  stats = compiled.memory_analysis()
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def collect_step_bytes(taskset, spec: mesh_lib.MeshSpec, *, strategy: str,
                       devices=None) -> int:
  """Per-device bytes of one principled collection step on the mesh ``spec``."""
  return device_bytes(compiled_collect_step(taskset, spec, strategy=strategy, devices=devices))


def compiled_collect_step(taskset, spec: mesh_lib.MeshSpec, *, strategy: str, devices=None):
  """One principled collection step, compiled for the mesh ``spec`` (not run)."""
  mesh = spec.build(devices)
  m = taskset.num_tasks
  # vmap: every combination of a device's share at once (its default chunk on this model).
  chunk = lookahead.CPU_MAP_BATCH_SIZE if strategy == "map" else None
  step = lookahead.make_collect_step(taskset, ("principled",), strategy=strategy,
                                     map_batch_size=chunk, mesh=mesh)
  state = jax.eval_shape(lambda: train.init_state(taskset, jax.random.key(0)))
  cstate = jax.eval_shape(lambda: lookahead.init_collector(jax.random.key(1), m, ("principled",)))
  batch = jax.eval_shape(lambda: jax.tree.map(jnp.asarray, taskset.train.eval_batches(
      taskset.batch_size).__next__()))
  rep = NamedSharding(mesh, P())
  args = (_abstract(cstate, rep), _abstract(state.params, rep), _abstract(state.opt_state, rep),
          _abstract(batch, NamedSharding(mesh, P("data"))))
  return jax.jit(step).lower(*args).compile()


def train_chunk_bytes(taskset, spec: mesh_lib.MeshSpec, *, chunk_size: int, devices=None) -> int:
  """Per-device bytes of one training step of ``chunk_size`` group networks on ``spec``."""
  return device_bytes(compiled_train_step(taskset, spec, chunk_size=chunk_size, devices=devices))


def compiled_train_step(taskset, spec: mesh_lib.MeshSpec, *, chunk_size: int, devices=None):
  """One training step of ``chunk_size`` group networks, compiled for ``spec`` (not run)."""
  mesh = spec.build(devices)
  keys = jax.random.split(jax.random.key(0), chunk_size)
  states = jax.eval_shape(jax.vmap(lambda k: train.init_state(taskset, k)), keys)
  batch = jax.eval_shape(lambda: jax.tree.map(jnp.asarray, taskset.train.eval_batches(
      taskset.batch_size).__next__()))
  weights = jax.ShapeDtypeStruct((chunk_size, taskset.num_tasks), jnp.float32)
  split = NamedSharding(mesh, P("networks"))
  step = jax.vmap(train.make_update_fn(taskset), in_axes=(0, None, 0))
  args = (_abstract(states, split), _abstract(batch, NamedSharding(mesh, P("data"))),
          _abstract(weights, split))
  return jax.jit(step, donate_argnums=0).lower(*args).compile()


def mesh_memory_figures(taskset, *, counts=DEVICE_COUNTS, chunk_size: int = 8
                        ) -> dict[str, float]:
  """The figures of the module docstring, for each device count in ``counts``."""
  devices = jax.devices()
  counts = [n for n in counts if n <= len(devices)]
  fig: dict[str, float] = {}

  def record(name, compiled):
    fig[f"{name}_bytes"] = device_bytes(compiled)
    fig[f"{name}_communicated"] = communicated(compiled)

  for n in counts:
    for strategy in ("vmap", "map"):
      record(f"collect_{strategy}_combos{n}", compiled_collect_step(
          taskset, mesh_lib.MeshSpec(combos=n), strategy=strategy, devices=devices))
      if taskset.batch_size % n == 0:
        record(f"collect_{strategy}_data{n}", compiled_collect_step(
            taskset, mesh_lib.MeshSpec(data=n), strategy=strategy, devices=devices))
    if chunk_size % n == 0:
      record(f"train_networks{n}", compiled_train_step(
          taskset, mesh_lib.MeshSpec(networks=n), chunk_size=chunk_size, devices=devices))
      if taskset.batch_size % n == 0:
        record(f"train_data{n}", compiled_train_step(
            taskset, mesh_lib.MeshSpec(data=n), chunk_size=chunk_size, devices=devices))
  for name in [k for k in fig if k.endswith("_bytes")]:
    one = name.replace(f"{_count(name)}_bytes", "1_bytes")
    if one in fig:
      fig[name.replace("_bytes", "_ratio")] = fig[name] / fig[one]
  return fig


def _count(name: str) -> int:
  digits = name[:-len("_bytes")]
  return int(digits[len(digits.rstrip("0123456789")):])


def main(argv: list[str]) -> None:
  """``python -m launch.bench_mesh CLUSTERS TASKS_PER_CLUSTER BATCH TRUNK_WIDTH``: JSON figures.

  Run by ``launch.bench --sections=mesh`` in a process of its own, so that XLA
  can fake 8 CPU devices there.
  """
  from tgroup.benchmarks import synthetic  # pylint: disable=g-import-not-at-top
  clusters, per_cluster, batch_size, width = (int(a) for a in argv)
  taskset = synthetic.synthetic(clusters, per_cluster, batch_size=batch_size, trunk_width=width)
  print(json.dumps(mesh_memory_figures(taskset)))


if __name__ == "__main__":
  main(sys.argv[1:])
