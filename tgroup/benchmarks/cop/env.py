"""The four problems as pure, batched step functions for POMO-style rollouts.

A rollout builds one solution per (instance, start) pair: ``B`` instances,
``P`` parallel starts, ``N`` nodes to choose among (the depot is node 0 for
CVRP and OP). Each problem is an :class:`Env` of pure functions on a state
dict of ``(B, P, ...)`` arrays:

- ``start``: the forced first action of each start (POMO: start p visits node
  p, or customer p for CVRP and OP; an OP customer out of reach of the length
  limit is replaced by the depot, which ends that tour empty);
- ``feasible``: ``(B, P, N)`` which actions are allowed now;
- ``step``: the state after an action; ``active`` False (nothing left to do)
  leaves it unchanged;
- ``context``: the last node and one scalar of remaining budget, which the
  decoder's query reads;
- ``objective``: tour length (TSP, CVRP: including the closing edge), prize
  (OP) or value (KP).

``steps(n)`` is the number of decisions after the start that always suffices:
n−1 for TSP and KP, n for OP (every other node and the return), 2n−1 for CVRP
(a customer never needs more than itself and one depot visit, and the depot is
never allowed twice in a row before the end). A finished CVRP or OP rollout
keeps choosing the depot, its only feasible action, which costs nothing and
has probability one.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

State = dict[str, jax.Array]

# Slack for the OP length limit and KP capacity in float32 sums.
_EPS = 1e-6


class Env(NamedTuple):
  features: Callable[[Any], jax.Array]                 # inst -> (B, N, F)
  init: Callable[[Any, int], State]                    # inst, P -> state before the start
  start: Callable[[Any, State], jax.Array]             # -> (B, P) forced first actions
  feasible: Callable[[Any, State], jax.Array]          # -> (B, P, N) bool
  step: Callable[[Any, State, jax.Array, jax.Array], State]
  context: Callable[[Any, State], tuple[jax.Array, jax.Array]]  # (last, scalar) (B, P)
  objective: Callable[[Any, State], jax.Array]         # (B, P)
  steps: Callable[[int], int]


def gather(x: jax.Array, idx: jax.Array) -> jax.Array:
  """``x[b, idx[b, p]]`` for ``x`` (B, N, ...) and ``idx`` (B, P): (B, P, ...)."""
  return jax.vmap(lambda xb, ib: xb[ib])(x, idx)


def _one_hot(a: jax.Array, n: int, active: jax.Array) -> jax.Array:
  return jax.nn.one_hot(a, n, dtype=jnp.bool_) & active[..., None]


def _with_depot(inst) -> jax.Array:
  return jnp.concatenate([inst["depot"][:, None], inst["locs"]], axis=1)


def distances(coords: jax.Array) -> jax.Array:
  """``(B, N, 2) -> (B, N, N)`` Euclidean distances."""
  return jnp.linalg.norm(coords[:, :, None] - coords[:, None], axis=-1)


def _zeros(b: int, p: int, dtype=jnp.float32) -> jax.Array:
  return jnp.zeros((b, p), dtype)


# TSP -------------------------------------------------------------------------

def _tsp_init(inst, p):
  b, n, _ = inst["locs"].shape
  return {"dist": distances(inst["locs"]), "visited": jnp.zeros((b, p, n), jnp.bool_),
          "first": _zeros(b, p, jnp.int32), "last": _zeros(b, p, jnp.int32),
          "length": _zeros(b, p), "count": _zeros(b, p, jnp.int32)}


def _tsp_step(inst, s, a, active):
  n = s["visited"].shape[-1]
  edge = jnp.where(s["count"] > 0, _gather_dist(s["dist"], s["last"], a), 0.0)
  return {**s, "visited": s["visited"] | _one_hot(a, n, active),
          "first": jnp.where(s["count"] == 0, a, s["first"]),
          "last": jnp.where(active, a, s["last"]),
          "length": s["length"] + edge * active,
          "count": s["count"] + active}


def _gather_dist(dist: jax.Array, i: jax.Array, j: jax.Array) -> jax.Array:
  """``dist[b, i[b, p], j[b, p]]``: (B, P)."""
  return jax.vmap(lambda d, ib, jb: d[ib, jb])(dist, i, j)


TSP = Env(
    features=lambda inst: inst["locs"],
    init=_tsp_init,
    start=lambda inst, s: jnp.broadcast_to(jnp.arange(s["last"].shape[1]), s["last"].shape),
    feasible=lambda inst, s: ~s["visited"],
    step=_tsp_step,
    context=lambda inst, s: (s["last"], s["count"] / s["visited"].shape[-1]),
    objective=lambda inst, s: s["length"] + _gather_dist(s["dist"], s["last"], s["first"]),
    steps=lambda n: n - 1,
)


# CVRP ------------------------------------------------------------------------

def _cvrp_demand(inst) -> jax.Array:
  """Demands as fractions of the capacity, depot 0: (B, N)."""
  frac = inst["demand"] / inst["capacity"][:, None].astype(jnp.float32)
  return jnp.pad(frac, ((0, 0), (1, 0)))


def _cvrp_features(inst):
  coords = _with_depot(inst)
  depot = jnp.zeros(coords.shape[:2]).at[:, 0].set(1.0)
  return jnp.concatenate([coords, _cvrp_demand(inst)[..., None], depot[..., None]], -1)


def _routing_init(inst, p):
  coords = _with_depot(inst)
  b, n, _ = coords.shape
  return {"dist": distances(coords), "visited": jnp.zeros((b, p, n), jnp.bool_),
          "last": _zeros(b, p, jnp.int32), "length": _zeros(b, p),
          "budget": jnp.ones((b, p)), "value": _zeros(b, p), "ended": _zeros(b, p, jnp.bool_)}


def _cvrp_feasible(inst, s):
  demand = _cvrp_demand(inst)[:, None]
  customers = ~s["visited"] & (demand <= s["budget"][..., None] + _EPS)
  all_done = s["visited"][..., 1:].all(-1)
  depot = (s["last"] != 0) | all_done
  return customers.at[..., 0].set(depot)


def _cvrp_step(inst, s, a, active):
  n = s["visited"].shape[-1]
  need = gather(_cvrp_demand(inst), a)
  return {**s, "visited": s["visited"] | (_one_hot(a, n, active) & (a != 0)[..., None]),
          "last": jnp.where(active, a, s["last"]),
          "length": s["length"] + _gather_dist(s["dist"], s["last"], a) * active,
          "budget": jnp.where(active, jnp.where(a == 0, 1.0, s["budget"] - need), s["budget"])}


def _customer_starts(s):
  b, p = s["last"].shape
  return jnp.broadcast_to(1 + jnp.arange(p), (b, p))


CVRP = Env(
    features=_cvrp_features,
    init=_routing_init,
    start=lambda inst, s: _customer_starts(s),
    feasible=_cvrp_feasible,
    step=_cvrp_step,
    context=lambda inst, s: (s["last"], s["budget"]),
    objective=lambda inst, s: s["length"] + _gather_dist(s["dist"], s["last"],
                                                         jnp.zeros_like(s["last"])),
    steps=lambda n: 2 * n - 1,
)


# OP --------------------------------------------------------------------------

def _op_prize(inst) -> jax.Array:
  return jnp.pad(inst["prize"], ((0, 0), (1, 0)))


def _op_features(inst):
  coords = _with_depot(inst)
  depot = jnp.zeros(coords.shape[:2]).at[:, 0].set(1.0)
  return jnp.concatenate([coords, _op_prize(inst)[..., None], depot[..., None]], -1)


def _op_feasible(inst, s):
  limit = inst["max_length"][:, None, None]
  from_last = jax.vmap(lambda d, l: d[l])(s["dist"], s["last"])        # (B, P, N)
  home = s["dist"][:, None, :, 0]                                       # (B, 1, N)
  reach = s["length"][..., None] + from_last + home <= limit + _EPS
  return (~s["visited"] & ~s["ended"][..., None] & reach).at[..., 0].set(True)


def _op_step(inst, s, a, active):
  n = s["visited"].shape[-1]
  limit = inst["max_length"][:, None]
  length = s["length"] + _gather_dist(s["dist"], s["last"], a) * active
  return {**s, "visited": s["visited"] | (_one_hot(a, n, active) & (a != 0)[..., None]),
          "last": jnp.where(active, a, s["last"]), "length": length,
          "budget": (limit - length) / limit,
          "value": s["value"] + gather(_op_prize(inst), a) * active,
          "ended": s["ended"] | ((a == 0) & active)}


def _op_start(inst, s):
  wanted = _customer_starts(s)
  ok = jnp.take_along_axis(_op_feasible(inst, s), wanted[..., None], axis=-1)[..., 0]
  return jnp.where(ok, wanted, 0)


OP = Env(
    features=_op_features,
    init=_routing_init,
    start=_op_start,
    feasible=_op_feasible,
    step=_op_step,
    context=lambda inst, s: (s["last"], s["budget"]),
    objective=lambda inst, s: s["value"],
    steps=lambda n: n,
)


# KP --------------------------------------------------------------------------

def _kp_init(inst, p):
  b, n = inst["weights"].shape
  return {"visited": jnp.zeros((b, p, n), jnp.bool_), "last": _zeros(b, p, jnp.int32),
          "room": jnp.broadcast_to(inst["capacity"][:, None], (b, p)).astype(jnp.float32),
          "value": _zeros(b, p)}


def _kp_feasible(inst, s):
  return ~s["visited"] & (inst["weights"][:, None] <= s["room"][..., None] + _EPS)


def _kp_step(inst, s, a, active):
  n = s["visited"].shape[-1]
  return {"visited": s["visited"] | _one_hot(a, n, active),
          "last": jnp.where(active, a, s["last"]),
          "room": s["room"] - gather(inst["weights"], a) * active,
          "value": s["value"] + gather(inst["values"], a) * active}


KP = Env(
    features=lambda inst: jnp.stack([inst["weights"], inst["values"]], -1),
    init=_kp_init,
    start=lambda inst, s: jnp.broadcast_to(jnp.arange(s["last"].shape[1]), s["last"].shape),
    feasible=_kp_feasible,
    step=_kp_step,
    context=lambda inst, s: (s["last"], s["room"] / inst["capacity"][:, None]),
    objective=lambda inst, s: s["value"],
    steps=lambda n: n - 1,
)

ENVS = {"tsp": TSP, "cvrp": CVRP, "op": OP, "kp": KP}


def decode_solution(problem: str, actions: Sequence[int]):
  """One rollout's actions (``-1`` for no-ops) as a solution of :mod:`.problems`.

  TSP: the tour; CVRP: the routes, customers numbered from 0; OP: the visited
  nodes before the return to the depot, numbered from 0; KP: the sorted items.

  Examples:
    >>> decode_solution("cvrp", [2, 0, 1, 3, 0, 0, -1])
    [[1], [0, 2]]
    >>> decode_solution("op", [3, 1, 0, 0])
    [2, 0]
  """
  actions = [int(a) for a in actions if int(a) >= 0]
  if problem == "tsp":
    return actions
  if problem == "kp":
    return sorted(actions)
  if problem == "op":
    tour = []
    for a in actions:
      if a == 0:
        break
      tour.append(a - 1)
    return tour
  routes, route = [], []
  for a in actions:
    if a == 0:
      if route:
        routes.append(route)
      route = []
    else:
      route.append(a - 1)
  return routes + ([route] if route else [])
