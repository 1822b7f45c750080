"""Seeded, batched instance generators in JAX, and the tasks' names and sizes.

The distributions are those of the attention-model benchmarks (Kool et al.,
2019) that POMO (Kwon et al., 2020) and the multi-task routing literature reuse:

- TSP: ``n`` points uniform in the unit square.
- CVRP: a depot and ``n`` customers uniform in the unit square, integer demands
  uniform in 1..9, vehicle capacity 20/30/40/50 for n = 10/20/50/100
  (interpolated linearly in n between, flat outside).
- OP ("distance" prizes): a depot and ``n`` nodes uniform in the unit square,
  the prize of node i is ``(1 + ⌊99 · d(0, i) / max_j d(0, j)⌋) / 100`` (far
  nodes pay more), the tour-length limit is 2/3/4 for n = 20/50/100
  (interpolated likewise).
- KP: ``n`` items with weights and values uniform in (0, 1), capacity ``n/4``
  up to 100 items and 25 above (12.5 for 50 items, 25 for 100 and 200, as POMO).

Every generator is a pure function of a key, jitted per (task, batch size).
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Defined with the objectives (numpy only, no JAX), shared here.
from tgroup.benchmarks.cop.problems import MINIMISE, PROBLEMS  # pylint: disable=unused-import
from tgroup.errors import UserError

DEFAULT_TASKS = ("TSP20", "TSP50", "CVRP20", "CVRP50", "OP20", "OP50")


class Task(NamedTuple):
  """One problem at one size, e.g. ``Task("cvrp", 50)`` named ``CVRP50``."""
  problem: str
  size: int

  @property
  def name(self) -> str:
    return f"{self.problem.upper()}{self.size}"

  @property
  def num_nodes(self) -> int:
    """Nodes the solver chooses among: the depot counts for CVRP and OP."""
    return self.size + (1 if self.problem in ("cvrp", "op") else 0)


def parse_task(text: str) -> Task:
  """``"CVRP50"`` (any case) -> ``Task("cvrp", 50)``.

  Examples:
    >>> parse_task("op20")
    Task(problem='op', size=20)
    >>> parse_task("VRP20")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: unknown task 'VRP20': expected a problem among TSP, CVRP, OP, KP \
followed by its size, e.g. TSP20
  """
  match = re.fullmatch(r"([a-zA-Z]+)(\d+)", text.strip())
  if not match or match.group(1).lower() not in PROBLEMS:
    raise UserError(f"unknown task {text!r}: expected a problem among "
                    f"{', '.join(p.upper() for p in PROBLEMS)} followed by its size, e.g. TSP20")
  size = int(match.group(2))
  low = 2 if match.group(1).lower() != "kp" else 1
  if size < low:
    raise UserError(f"task {text!r} has {size} nodes; at least {low} are needed")
  return Task(match.group(1).lower(), size)


def cvrp_capacity(n: int) -> int:
  """Vehicle capacity for ``n`` customers.

  Examples:
    >>> [cvrp_capacity(n) for n in (10, 20, 50, 100, 35)]
    [20, 30, 40, 50, 35]
  """
  return int(round(float(np.interp(n, [10, 20, 50, 100], [20, 30, 40, 50]))))


def op_max_length(n: int) -> float:
  """Tour-length limit for ``n`` nodes.

  Examples:
    >>> [op_max_length(n) for n in (20, 50, 100, 10)]
    [2.0, 3.0, 4.0, 2.0]
  """
  return float(np.interp(n, [20, 50, 100], [2.0, 3.0, 4.0]))


def kp_capacity(n: int) -> float:
  """Knapsack capacity for ``n`` items.

  Examples:
    >>> [kp_capacity(n) for n in (20, 50, 100, 200)]
    [5.0, 12.5, 25.0, 25.0]
  """
  return float(min(n, 100) / 4)


@functools.partial(jax.jit, static_argnums=(0, 2))
def generate(task: Task, key: jax.Array, batch: int) -> dict[str, jax.Array]:
  """``batch`` instances of ``task`` (see the module docstring).

  Examples:
    >>> inst = generate(Task("cvrp", 20), jax.random.key(0), 4)
    >>> {k: v.shape for k, v in inst.items()}
    {'capacity': (4,), 'demand': (4, 20), 'depot': (4, 2), 'locs': (4, 20, 2)}
    >>> int(inst["capacity"][0]), bool((inst["demand"] >= 1).all() & (inst["demand"] <= 9).all())
    (30, True)
  """
  n = task.size
  k_depot, k_locs, k_extra = jax.random.split(key, 3)
  if task.problem == "kp":
    weights, values = jax.random.uniform(k_locs, (2, batch, n))
    return {"weights": weights, "values": values,
            "capacity": jnp.full((batch,), kp_capacity(n), jnp.float32)}
  locs = jax.random.uniform(k_locs, (batch, n, 2))
  if task.problem == "tsp":
    return {"locs": locs}
  depot = jax.random.uniform(k_depot, (batch, 2))
  if task.problem == "cvrp":
    demand = jax.random.randint(k_extra, (batch, n), 1, 10, dtype=jnp.int32)
    return {"depot": depot, "locs": locs, "demand": demand,
            "capacity": jnp.full((batch,), cvrp_capacity(n), jnp.int32)}
  dist = jnp.linalg.norm(locs - depot[:, None], axis=-1)
  prize = (1 + jnp.floor(99 * dist / dist.max(-1, keepdims=True))) / 100
  return {"depot": depot, "locs": locs, "prize": prize,
          "max_length": jnp.full((batch,), op_max_length(n), jnp.float32)}


def generate_numpy(task: Task, seed: int, batch: int) -> dict[str, np.ndarray]:
  """:func:`generate` from an integer seed, as numpy arrays (fixed test sets, solvers)."""
  return {k: np.asarray(v) for k, v in generate(task, jax.random.key(seed), batch).items()}
