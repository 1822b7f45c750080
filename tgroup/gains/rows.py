"""Running one function over many rows in bounded chunks: lookahead combinations
and backward passes (Jacobian rows).

A step's memory must not grow with the number of rows times the per-row working
set, so rows go through ``lax.map`` (a few per loop iteration) or ``vmap`` in
chunks, and optionally split over a mesh's ``combos`` axis first.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def map_rows(one: Callable[[Any], jax.Array], rows, *, strategy: str, chunk: int | None,
             mesh: Mesh | None = None) -> jax.Array:
  """``one`` over ``rows`` (a pytree of arrays with a leading axis of k rows), ``chunk``
  rows at a time (vmapped chunks).

  ``map`` with ``chunk`` None: one row at a time; ``vmap`` with ``chunk`` None
  or at least the rows: all at once. With ``mesh``, the rows are split over its
  ``combos`` axis first: each device maps its share.
  """
  def run(r):
    if strategy == "vmap" and (chunk is None or chunk >= jax.tree.leaves(r)[0].shape[0]):
      return jax.vmap(one)(r)
    return jax.lax.map(one, r, batch_size=chunk)

  rows = jax.tree.map(jnp.asarray, rows)
  shares = 1 if mesh is None else mesh.shape["combos"]
  if shares == 1:
    return run(rows)
  # One block of rows per device of the combos axis; padding rows (zeros: a zero
  # step) are stepped and dropped.
  k = jax.tree.leaves(rows)[0].shape[0]
  per = -(-k // shares)

  def block(x):
    padded = jnp.zeros((shares * per,) + x.shape[1:], x.dtype).at[:k].set(x)
    return jax.lax.with_sharding_constraint(padded.reshape((shares, per) + x.shape[1:]),
                                            NamedSharding(mesh, P("combos")))

  out = jax.vmap(run)(jax.tree.map(block, rows))
  return out.reshape((shares * per,) + out.shape[2:])[:k]


def backward_rows(vjp: Callable, cotangents: jax.Array, *, strategy: str = "map",
                  chunk: int | None = None):
  """``vjp`` of every row of ``cotangents`` (one-hot task rows): the Jacobian rows.

  Each backward pass carries a cotangent for every task's outputs, so all s rows
  at once hold s × m × batch values per head layer (at 100 tasks 33 MB against a
  training step's 0.43 MB, docs/design.md §2.3). Under ``map`` the rows go one at
  a time (on CPU no slower than vmap); under ``vmap``, ``chunk`` rows at a time
  (None: all).
  """
  return map_rows(vjp, cotangents, strategy=strategy, chunk=chunk)
