"""One run over many devices: a device mesh with three named axes (docs/accelerators.md).

- ``data``: each batch is split across it (the collection run, group networks,
  evaluation, the landscape pass); losses and gradients are reduced across it
  by XLA, so a step computes what one device computes, up to the order of
  floating-point sums.
- ``combos``: the lookahead combinations of a collection step are split across
  it: each device evaluates its share of pairs and self-pairs, and holds only
  its share of the lookahead weights.
- ``networks``: the vmapped chunk of group networks is split across it.

Sharding is JAX's own: arrays are placed with :class:`jax.sharding.NamedSharding`
and XLA's SPMD partitioner splits the jitted programs (no hand-written
collectives). A run without a mesh uses one device, exactly as before.

``auto`` puts every device on the axis that suits each stage: the collection
run on ``combos`` (its lookahead weights are the run's largest share of memory,
m(m+1)/2 copies of the parameters), group networks on ``networks`` when the chunk
size allows (else ``data``), the landscape pass and evaluation on ``data`` when
the batch size allows (else one device).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterator, Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from tgroup.errors import UserError

AXES = ("data", "combos", "networks")
STAGES = ("collect", "train", "landscape")


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """Sizes of the three axes (1 where not given), or ``auto``.

  Examples:
    >>> MeshSpec.parse("data:4,combos:2")
    MeshSpec(data=4, combos=2, networks=1, auto=False)
    >>> str(MeshSpec.parse("data:4,combos:2")), MeshSpec.parse("data:4,combos:2").size
    ('data:4,combos:2', 8)
    >>> MeshSpec.parse("data:2,data:4")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: --mesh=data:2,data:4 repeats the axis 'data'
  """
  data: int = 1
  combos: int = 1
  networks: int = 1
  auto: bool = False

  @classmethod
  def parse(cls, text: str | None) -> MeshSpec | None:
    """``AXIS:N[,AXIS:N]`` or ``auto``; None or empty: no mesh (one device)."""
    if text is None or not text.strip():
      return None
    if text.strip() == "auto":
      return cls(auto=True)
    sizes: dict[str, int] = {}
    for part in text.split(","):
      name, sep, value = part.strip().partition(":")
      if name not in AXES:
        raise UserError(f"--mesh={text}: unknown axis {name!r}; axes: {', '.join(AXES)} "
                        "(AXIS:N[,AXIS:N], or auto)")
      if name in sizes:
        raise UserError(f"--mesh={text} repeats the axis {name!r}")
      if not sep or not value.strip().isdigit() or int(value) < 1:
        raise UserError(f"--mesh={text}: {part.strip()!r} needs a size >= 1, as in {name}:4")
      sizes[name] = int(value)
    return cls(**sizes)

  @property
  def size(self) -> int:
    return self.data * self.combos * self.networks

  def __str__(self) -> str:
    if self.auto:
      return "auto"
    return ",".join(f"{a}:{getattr(self, a)}" for a in AXES if getattr(self, a) > 1) or "data:1"

  def for_stage(self, stage: str, devices: int, *, batch_size: int, chunk_size: int
                ) -> MeshSpec:
    """The axis sizes a stage uses: these, or for ``auto`` the stage's choice."""
    if not self.auto:
      return self
    if stage == "collect":
      return MeshSpec(combos=devices)
    if stage == "train" and chunk_size % devices == 0:
      return MeshSpec(networks=devices)
    return MeshSpec(data=devices) if batch_size % devices == 0 else MeshSpec()

  def check(self, devices: int, *, batch_size: int, chunk_size: int) -> None:
    """A UserError, before any work, when this mesh cannot run on ``devices`` devices."""
    if self.auto:
      return
    if batch_size % self.data:
      raise UserError(f"the batch size {batch_size} cannot be split over --mesh={self}'s data "
                      f"axis of {self.data}: make it a multiple")
    if chunk_size % self.networks:
      raise UserError(f"the chunk of {chunk_size} networks cannot be split over "
                      f"--mesh={self}'s networks axis of {self.networks}: set --chunk_size "
                      "to a multiple")
    if self.size != devices:
      raise UserError(f"--mesh={self} spans {self.size} devices, but this run has {devices} "
                      f"({describe_devices()}); the axes' sizes must multiply to the number of "
                      "devices")

  def build(self, devices: Sequence[Any] | None = None) -> Mesh:
    """The :class:`jax.sharding.Mesh` (axes in :data:`AXES` order, sharded automatically)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = tuple(getattr(self, a) for a in AXES)
    return Mesh(np.array(devices[:int(np.prod(shape))]).reshape(shape), AXES,
                axis_types=(AxisType.Auto,) * len(AXES))


def describe_devices() -> str:
  """e.g. ``8 cpu devices`` or ``4 gpu devices over 2 processes``."""
  devices = jax.devices()
  processes = jax.process_count()
  over = f" over {processes} processes" if processes > 1 else ""
  return f"{len(devices)} {devices[0].platform} device{'s' * (len(devices) > 1)}{over}"


def stage_mesh(spec: str | MeshSpec | None, stage: str, *, batch_size: int,
               chunk_size: int = 1) -> Mesh | None:
  """The mesh a stage runs on, or None for one device (no mesh, or a mesh of size 1).

  ``spec``: a :class:`MeshSpec` or its text (``--mesh``'s value).
  """
  if isinstance(spec, str) or spec is None:
    spec = MeshSpec.parse(spec)
  if spec is None:
    return None
  sizes = spec.for_stage(stage, len(jax.devices()), batch_size=batch_size,
                         chunk_size=chunk_size)
  return None if sizes.size == 1 else sizes.build()


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def leading(mesh: Mesh, axis: str) -> NamedSharding:
  """Arrays split along their first dimension over ``axis``."""
  return NamedSharding(mesh, P(axis))


def put(tree, sharding: NamedSharding):
  """``tree`` placed with one sharding for every leaf.

  In a distributed run every process holds the whole value (the same on each:
  same seed, same code) and places the parts its own devices hold.
  """
  if jax.process_count() == 1:
    return jax.device_put(tree, jax.tree.map(lambda _: sharding, tree))
  return jax.tree.map(lambda x: _global(x, sharding), tree)


def _global(x, sharding: NamedSharding) -> jax.Array:
  if isinstance(x, jax.Array) and not x.is_fully_addressable:  # global already: reshard
    return x if x.sharding == sharding else jax.device_put(x, sharding)
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # keys travel as their raw bits
    impl = jax.random.key_impl(x)
    return jax.random.wrap_key_data(_global(jax.random.key_data(x), sharding), impl=impl)
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def fetch(tree):
  """``tree``'s arrays as NumPy arrays, whole, on every process.

  An array split over several processes' devices is gathered first (a
  collective every process of a distributed run reaches at the same point).
  """
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree.map(one, tree)


def settle(tree, mesh: Mesh | None):
  """``tree``, waited for when a mesh of several CPU devices computed it.

  XLA:CPU's in-process collectives deadlock when consecutive multi-device
  programs overlap (measured: a data-parallel SGD step on 8 CPU devices of a
  2-core machine hung within 500 asynchronously dispatched steps, and never
  when each step was waited for; disabling JAX's CPU async dispatch did not
  help). Accelerators keep asynchronous dispatch.
  """
  if mesh is not None and mesh.devices.flat[0].platform == "cpu":
    jax.block_until_ready(tree)
  return tree


def put_batch(batch, mesh: Mesh | None, batch_size: int):
  """A batch of ``batch_size`` rows split over ``data`` (every leaf's first axis is the batch).

  In a distributed run ``batch`` holds this process's share (:func:`load_rows`),
  or the whole batch, which is then cut to it; the share becomes part of one
  global array (:func:`jax.make_array_from_process_local_data`).
  """
  if mesh is None:
    return batch
  sharding = leading(mesh, "data")
  if jax.process_count() == 1:
    return put(batch, sharding)
  rows = local_rows(sharding, batch_size)

  def one(x):
    x = np.asarray(x)
    if len(x) == batch_size and rows.stop - rows.start < batch_size:
      x = x[rows]
    return jax.make_array_from_process_local_data(sharding, x, (batch_size, *x.shape[1:]))
  return jax.tree.map(one, batch)


def load_rows(mesh: Mesh | None, batch_size: int) -> slice | None:
  """The rows of each batch this process reads: its devices' share in a distributed run.

  None (every row) without a mesh or with one process.
  """
  if mesh is None or jax.process_count() == 1:
    return None
  return local_rows(leading(mesh, "data"), batch_size)


def read(batches: Callable[..., Iterator], rows: slice | None) -> Iterator:
  """``batches()``'s stream, each batch cut to ``rows``.

  A dataset whose ``train_batches``/``eval_batches`` takes ``rows`` reads only
  those (:class:`tgroup.data.ArrayDataset`); a user's loader without it is read
  whole and cut.
  """
  if rows is None:
    return batches()
  if "rows" in inspect.signature(batches).parameters:
    return batches(rows=rows)
  return (jax.tree.map(lambda x: x[rows], b) for b in batches())


def local_rows(sharding: NamedSharding, n: int) -> slice:
  """The rows of an ``n``-row array split by ``sharding`` that this process's devices hold."""
  spans = {(i[0].start or 0, n if i[0].stop is None else i[0].stop)
           for i in sharding.addressable_devices_indices_map((n,)).values()}
  spans = sorted(spans)
  if any(a != b for (_, a), (b, _) in zip(spans, spans[1:])):  # mesh.build keeps them whole
    raise ValueError(f"this process's rows of the batch are not one block: {spans}")
  return slice(spans[0][0], spans[-1][1])
