"""What a group's network costs, measured by XLA rather than typed in.

A group G is served by the benchmark's trunk plus the heads of G: the TaskSet's
model with ``num_tasks = |G|``. Its cost comes from the compiled forward pass
at a stated batch size (``jax.jit(...).lower(...).compile()``):

- ``flops``: XLA's cost analysis of the forward pass (floating-point operations
  for one batch);
- ``memory``: bytes the compiled forward pass holds at once: its arguments (the
  parameters and the input batch), its outputs and its temporaries, from XLA's
  memory analysis;
- ``params``: the number of parameters (counted from the parameter shapes);
- ``uniform``: 1 per network (a budget then counts networks).

With identical heads (:class:`tgroup.models.MultiTaskModel`) the network of G
depends on G only through its size, so a cost table compiles one forward pass
per group size, not per group.

A half-size network (Standley et al.'s cheaper single-task networks) halves the
trunk's width (``widths`` of :class:`tgroup.models.MLPTrunk`, or a ``width``
field such as the CelebA encoder's); its cost is measured the same way.

Costs can also come from a JSON file (:func:`costs_from_json`, kept with the
JAX-free grouping code): per-task costs (a network costs ``base`` plus the sum
over its tasks) and/or explicit per-group costs, which win.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tgroup.errors import UserError
from tgroup.grouping.budget import COST_MODELS, check_cost_model, costs_from_json
from tgroup.tasks import TaskSet

__all__ = ["COST_MODELS", "NetworkCost", "check_cost_model", "costs_from_json", "half_width",
           "measure_network", "measured_cost_fn", "measured_costs", "network_model"]


@dataclasses.dataclass(frozen=True)
class NetworkCost:
  """The measured figures of one network (a trunk and ``num_heads`` heads).

  Attributes:
    num_heads: heads on the trunk.
    half_size: the trunk is the half-width one.
    batch_size: batch of the measured forward pass.
    flops: XLA's floating-point operation count of one forward pass.
    bytes_accessed: XLA's estimate of bytes read and written by it.
    memory_bytes: arguments + outputs + temporaries of the compiled pass.
    params: number of parameters.
    param_bytes: bytes of the parameters.
  """
  num_heads: int
  half_size: bool
  batch_size: int
  flops: float
  bytes_accessed: float
  memory_bytes: int
  params: int
  param_bytes: int

  def value(self, cost_model: str) -> float:
    """The figure a budget counts under ``cost_model`` (one of :data:`COST_MODELS`)."""
    check_cost_model(cost_model)
    return {"flops": self.flops, "memory": float(self.memory_bytes),
            "params": float(self.params), "uniform": 1.0}[cost_model]


def network_model(taskset: TaskSet, num_heads: int, *, half_size: bool = False):
  """The TaskSet's model with ``num_heads`` heads (and a half-width trunk if asked).

  Raises:
    UserError: the model has no ``num_heads`` field to set (not a
      :class:`tgroup.models.MultiTaskModel`-like model), or ``half_size`` is asked
      of a trunk without a width to halve.
  """
  model = taskset.model
  if not hasattr(model, "num_tasks"):
    raise UserError(f"cannot build a network with {num_heads} heads from {type(model).__name__}"
                    " (no num_tasks field); give network costs in a JSON file instead")
  if num_heads < 1:
    raise UserError(f"a network needs at least one head, got {num_heads}")
  model = model.clone(num_tasks=num_heads)
  if half_size:
    model = model.clone(trunk=half_width(model.trunk))
  return model


def half_width(trunk):
  """``trunk`` with every width halved (rounded up), for half-size networks.

  Examples:
    >>> from tgroup.models import MLPTrunk
    >>> half_width(MLPTrunk((16, 9))).widths
    (8, 5)
  """
  if hasattr(trunk, "widths"):
    return trunk.clone(widths=tuple(math.ceil(w / 2) for w in trunk.widths))
  if hasattr(trunk, "width"):
    return trunk.clone(width=math.ceil(trunk.width / 2))
  raise UserError(f"cannot halve {type(trunk).__name__}: it has no 'widths' or 'width' "
                  "field; give the half-size networks' costs in a JSON file instead")


def measure_network(taskset: TaskSet, num_heads: int, *, batch_size: int = 256,
                    half_size: bool = False) -> NetworkCost:
  """Compiles the forward pass of a ``num_heads``-head network and reads its costs.

  Nothing is run and no parameters are materialised: the parameters are
  abstract shapes (``jax.eval_shape``), the pass is lowered and compiled only.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> one, two = (measure_network(ts, k, batch_size=32) for k in (1, 2))
    >>> two.params - one.params  # one more 16 -> 1 linear head
    17
    >>> 0 < one.flops < two.flops
    True
  """
  if batch_size < 1:
    raise UserError(f"batch_size must be >= 1, got {batch_size}")
  model = network_model(taskset, num_heads, half_size=half_size)
  sample = jax.tree.map(np.asarray, next(taskset.train.eval_batches(1)).inputs)
  x = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size, *a.shape[1:]),
                                                  jnp.asarray(a).dtype), sample)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  leaves = jax.tree.leaves(variables["params"])
  compiled = jax.jit(model.apply).lower(variables, x).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
    analysis = analysis[0] if analysis else {}
  memory = compiled.memory_analysis()
  held = (memory.argument_size_in_bytes + memory.output_size_in_bytes
          + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
  return NetworkCost(
      num_heads=num_heads, half_size=half_size, batch_size=batch_size,
      flops=float(analysis.get("flops", 0.0)),
      bytes_accessed=float(analysis.get("bytes accessed", 0.0)),
      memory_bytes=int(held),
      params=int(sum(math.prod(l.shape) for l in leaves)),
      param_bytes=int(sum(math.prod(l.shape) * l.dtype.itemsize for l in leaves)))


def measured_costs(taskset: TaskSet, groups: Sequence[Sequence[int]], cost_model: str, *,
                   batch_size: int = 256, half_size: Sequence[bool] | None = None
                   ) -> np.ndarray:
  """The cost of each group's network under ``cost_model``, one compile per distinct size.

  Args:
    taskset: the problem (its model decides the networks).
    groups: task-index groups, one network each.
    cost_model: one of :data:`COST_MODELS`.
    batch_size: batch of the measured forward pass.
    half_size: per group, whether its network is the half-size one.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> measured_costs(ts, [(0,), (0, 1), (2, 3), (0, 1, 2, 3)], "params").tolist()  # 544 + 17k
    [561.0, 578.0, 578.0, 612.0]
  """
  cost = measured_cost_fn(taskset, cost_model, batch_size=batch_size)
  half_size = [False] * len(groups) if half_size is None else list(half_size)
  if len(half_size) != len(groups):
    raise ValueError(f"{len(half_size)} half_size flags for {len(groups)} groups")
  return np.asarray([cost(tuple(g), bool(h)) for g, h in zip(groups, half_size)], float)


def measured_cost_fn(taskset: TaskSet, cost_model: str, *,
                     batch_size: int = 256) -> Callable[[tuple[int, ...], bool], float]:
  """``cost(group, half_size)`` under ``cost_model``, as a :class:`~tgroup.grouping.budget.Budget`
  takes it: each distinct (size, half_size) network is compiled once, on first use."""
  check_cost_model(cost_model)
  measured: dict[tuple[int, bool], float] = {}

  def cost(group: tuple[int, ...], half: bool) -> float:
    if cost_model == "uniform":
      return 1.0
    key = (len(group), bool(half))
    if key not in measured:
      measured[key] = measure_network(taskset, key[0], batch_size=batch_size,
                                      half_size=key[1]).value(cost_model)
    return measured[key]

  return cost
