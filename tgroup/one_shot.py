"""``jax.jit`` for programs that run once: compiled for compile time, not run time.

Some programs run once per grouping, for milliseconds: a parameter
initialisation (random draws, each unrolled by XLA into a threefry network of
its own) and the GAT auto-encoder's whole training loop. For those the compile
is the whole cost, so on CPU they are compiled with XLA's cheapest settings:
backend optimisation level 0 and the older (non-MLIR) fusion emitters.
Measured on this project's 2-core CPU (jax 0.10.2): the synthetic model's
initialisation compiled in 0.18-0.20 s instead of 0.60-0.74 s, the GAT
auto-encoder (9 tasks, 300 Adam steps) in 0.58-0.88 s instead of 1.4-3.1 s,
and it ran in 50 ms instead of 20-90 ms. Results are equal to within float32
rounding, not bitwise (the initialisation differed by at most 1 ulp in some
leaves), which is why training keeps the fully optimised init of
:meth:`tgroup.tasks.TaskSet.init_params`.

On other backends ``jit_once`` is plain ``jax.jit``: nothing was measured there.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax

CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def jit_once(fun: Callable, **jit_kwargs) -> Callable:
  """``jax.jit(fun, **jit_kwargs)``, compiled cheaply on CPU (see the module docstring).

  The options are picked from the default backend at the first call on it, so
  a function decorated at import time still follows a backend chosen later.

  Examples:
    >>> import jax.numpy as jnp
    >>> double = jit_once(lambda x: 2 * x)
    >>> double(jnp.arange(3)).tolist()
    [0, 2, 4]
  """
  by_backend: dict[str, Callable] = {}

  @functools.wraps(fun)
  def call(*args, **kwargs):
    backend = jax.default_backend()
    if backend not in by_backend:
      options = CPU_OPTIONS if backend == "cpu" else None
      by_backend[backend] = jax.jit(fun, compiler_options=options, **jit_kwargs)
    return by_backend[backend](*args, **kwargs)

  return call
