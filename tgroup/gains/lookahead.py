"""One collection step as a pure function: per-task gradients, lookaheads, gains.

Per step and batch B, with the current parameters θ and optimizer state o:

1. one reverse pass gives the losses L(θ) and, vmapped over one-hot cotangents,
   the s-row Jacobian of the drawn tasks' losses (one gradient per task);
2. for every combination row w, the gradient ``w @ J`` goes through the real
   ``optimizer.update`` from o, giving θ⁺, and one forward pass gives L(θ⁺) for
   every task; the new optimizer state is dropped, so the training state never
   changes;
3. the ratios L(θ⁺)/L(θ) become the gains of each requested measure (docs/design.md §2):

   - principled: ``s[i, j] = 1 − L_j(θ⁺_{i,j}) / L_j(θ)``, the diagonal from the
     self-pair {j, j} (a step of the same size made only of j's gradient);
   - principled_marginal: ``(L_j(θ⁺_j) − L_j(θ⁺_{i,j})) / L_j(θ)``, off-diagonal;
   - tag: ``1 − L_j(θ_s⁺|i, θ_j) / L_j(θ)``, a step of the shared trunk only.

Two measures need no lookahead, only the Gram matrix of the per-task gradients:

   - cosine: the cosine similarity of tasks' shared-trunk gradients (TAG's
     baseline);
   - first_order: the first-order Taylor expansion of the principled gain for a
     plain gradient step of size 1, ``(∇L_j·g_i + ∇L_j·g_j) / L_j(θ)`` (diagonal
     ``2 ∇L_j·g_j / L_j``). Multiply by a learning rate to compare magnitudes
     with the exact gains; grouping does not depend on a common scale.

Combinations run under ``lax.map`` (CPU: vmap copies the weights once per
combination) or ``vmap`` (accelerators), chosen by ``strategy``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import optax

from tgroup.gains import combinations


class GainSums(NamedTuple):
  """Running sums and per-entry counts of one measure, both ``(m, m)``."""
  sums: jax.Array
  counts: jax.Array


class CollectorState(NamedTuple):
  """Everything collection carries between steps (a plain pytree)."""
  key: jax.Array
  draws: jax.Array                 # (m,) how often each task was drawn
  measures: dict[str, GainSums]


def init_collector(key: jax.Array, num_tasks: int, measures) -> CollectorState:
  zeros = lambda dtype: jnp.zeros((num_tasks, num_tasks), dtype)
  # Default float dtype: float32, or float64 under jax.enable_x64 (the exact tests).
  return CollectorState(key, jnp.zeros(num_tasks, jnp.int32),
                        {name: GainSums(zeros(float), zeros(jnp.int32)) for name in measures})


# lax.map's batch size under the auto strategy on CPU: a few combinations per loop
# iteration amortise the per-iteration cost of many small kernels. Measured with
# `python -m launch.bench --map_batch_sizes=1,2,3,4,5,6,8` (README): 3 was fastest.
CPU_MAP_BATCH_SIZE = 3


def resolve_strategy(strategy: str, map_batch_size: int | None = None
                     ) -> tuple[str, int | None]:
  """(``map`` or ``vmap``, lax.map batch size).

  ``auto`` is ``lax.map`` in chunks of :data:`CPU_MAP_BATCH_SIZE` on CPU (vmap
  would copy the weights once per combination) and ``vmap`` on accelerators.
  An explicit ``map_batch_size`` wins; None under ``map`` means one at a time.
  """
  if strategy == "auto":
    if jax.default_backend() != "cpu":
      return "vmap", None
    return "map", map_batch_size or CPU_MAP_BATCH_SIZE
  if strategy == "map":
    return "map", map_batch_size
  if strategy == "vmap":
    return "vmap", None
  raise ValueError(f"strategy must be auto, map or vmap, got {strategy!r}")


def draw_tasks(key: jax.Array, draws: jax.Array, s: int, bias: str) -> jax.Array:
  """``s`` distinct task indices, sorted.

  ``uniform`` draws every subset of size s equally often; ``rare`` draws without
  replacement with probability proportional to ``1 / (1 + draws − min(draws))``
  (Gumbel top-k), so tasks drawn less often so far catch up.
  """
  m = draws.shape[0]
  if s == m:
    return jnp.arange(m)
  if bias == "uniform":
    logits = jnp.zeros(m)
  elif bias == "rare":
    logits = -jnp.log1p((draws - draws.min()).astype(jnp.float32))
  else:
    raise ValueError(f"bias must be uniform or rare, got {bias!r}")
  _, idx = jax.lax.top_k(logits + jax.random.gumbel(key, (m,)), s)
  return jnp.sort(idx)


def lookahead_losses(losses_fn: Callable[[Any], jax.Array], optimizer: optax.GradientTransformation,
                     params, opt_state, jac, weights: np.ndarray, *, step_mask=None,
                     strategy: str = "map", map_batch_size: int | None = None,
                     mesh: Mesh | None = None) -> jax.Array:
  """Task losses after one real optimizer step per combination row.

  Args:
    losses_fn: ``params -> (m,)`` task losses on the batch.
    optimizer: the training optax transformation.
    params, opt_state: the current training state (not modified).
    jac: pytree like params with a leading axis of s per-task gradients.
    weights: ``(k, s)`` combination rows.
    step_mask: optional pytree of Python bools; False leaves keep their value
      (TAG steps only the shared trunk).
    strategy: ``map`` (``lax.map``) or ``vmap``.
    map_batch_size: ``lax.map`` batch size (vmapped chunks), None for one at a time.
    mesh: split the rows over its ``combos`` axis: each device steps and
      evaluates its share (under ``map``, one at a time on each device).

  Returns:
    ``(k, m)`` losses L(θ⁺) of every task after each combination's step.
  """
  def one(w):
    grads = jax.tree.map(lambda j: jnp.tensordot(w, j, axes=1), jac)
    updates, _ = optimizer.update(grads, opt_state, params)
    if step_mask is not None:
      updates = jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, step_mask)
    return losses_fn(optax.apply_updates(params, updates))

  weights = jnp.asarray(weights)
  run = ((lambda w: jax.lax.map(one, w, batch_size=map_batch_size)) if strategy == "map"
         else jax.vmap(one))
  shares = 1 if mesh is None else mesh.shape["combos"]
  if shares == 1:
    return run(weights)
  # One block of rows per device of the combos axis; padding rows (zero weights)
  # are stepped and dropped.
  k = weights.shape[0]
  per = -(-k // shares)
  padded = jnp.zeros((shares * per, weights.shape[1]), weights.dtype).at[:k].set(weights)
  blocks = jax.lax.with_sharding_constraint(padded.reshape(shares, per, -1),
                                            NamedSharding(mesh, P("combos")))
  return jax.vmap(run)(blocks).reshape(shares * per, -1)[:k]


def per_task_gradients(losses_fn, params, task_idx: jax.Array, num_tasks: int):
  """Losses ``(m,)`` and the Jacobian rows of tasks ``task_idx``: one forward pass."""
  losses, vjp = jax.vjp(losses_fn, params)
  cotangents = jax.nn.one_hot(task_idx, num_tasks, dtype=losses.dtype)
  (jac,) = jax.vmap(vjp)(cotangents)
  return losses, jac


def gram(jac, keep=None) -> jax.Array:
  """``(s, s)`` dot products of per-task gradients (only leaves where ``keep`` is True)."""
  leaves = jax.tree.leaves(jac)
  if keep is not None:
    leaves = [leaf for leaf, k in zip(leaves, jax.tree.leaves(keep)) if k]
  return sum(jnp.tensordot(x, x, axes=(tuple(range(1, x.ndim)),) * 2) for x in leaves)


def step_gains(ratios_full: jax.Array, ratios_shared: jax.Array, idx: jax.Array,
               lay: combinations.Layout, measures, *, full_gram=None, shared_gram=None,
               losses=None) -> dict[str, tuple[jax.Array, np.ndarray]]:
  """Per-step gains on the drawn tasks: measure -> ((s, s) values, (s, s) 0/1 collected).

  ``ratios_*`` are ``L(θ⁺)/L(θ)`` of shape ``(k, m)``; the Gram matrices are
  ``(s, s)`` over all / shared parameters; ``losses`` is L(θ), ``(m,)``. Entry
  [a, b] of the result is what drawn task b receives from drawn task a.
  """
  s = lay.s
  target = np.arange(s)[None, :]
  off_diag = 1 - np.eye(s, dtype=np.int32)
  out = {}
  # (k, s): the targets restricted to the drawn tasks.
  r = ratios_full[:, idx] if ratios_full is not None else None
  if "principled" in measures:
    out["principled"] = (1.0 - r[lay.pair_or_self, target], np.ones((s, s), np.int32))
  if "principled_marginal" in measures:
    pair = np.where(off_diag == 1, lay.pair_or_self, 0)  # diagonal is not collected
    out["principled_marginal"] = (
        (r[lay.single[None, :], target] - r[pair, target]) * off_diag, off_diag)
  if "tag" in measures:
    out["tag"] = (1.0 - ratios_shared[:, idx], np.ones((s, s), np.int32))
  if "cosine" in measures:
    norms = jnp.sqrt(jnp.diag(shared_gram))
    out["cosine"] = (shared_gram / jnp.maximum(norms[:, None] * norms[None, :], 1e-30),
                     np.ones((s, s), np.int32))
  if "first_order" in measures:
    own = jnp.diag(full_gram)[None, :]
    out["first_order"] = ((full_gram + own) / losses[idx][None, :], np.ones((s, s), np.int32))
  return out


def make_collect_step(taskset, measures, *, sample_tasks: int | None = None,
                      sample_bias: str = "uniform", strategy: str = "auto",
                      map_batch_size: int | None = None, mesh: Mesh | None = None):
  """``collect_step(cstate, params, opt_state, batch) -> cstate``, a pure function to jit.

  Args:
    taskset: the problem (losses, optimizer, shared-parameter mask).
    measures: names among :data:`tgroup.gains.combinations.MEASURES`.
    sample_tasks: draw this many tasks per step (None: all).
    sample_bias: ``uniform`` or ``rare`` (see :func:`draw_tasks`).
    strategy: ``auto``, ``map`` or ``vmap`` (see :func:`resolve_strategy`).
    map_batch_size: see :func:`resolve_strategy`.
    mesh: split the lookaheads over its ``combos`` axis (see
      :func:`lookahead_losses`); the batch is split over ``data`` by its placement.
  """
  m = taskset.num_tasks
  s = m if sample_tasks is None else sample_tasks
  measures = tuple(measures)
  lay = combinations.layout(s, measures)
  strategy, map_batch_size = resolve_strategy(strategy, map_batch_size)
  optimizer = taskset.optimizer

  def collect_step(cstate: CollectorState, params, opt_state, batch) -> CollectorState:
    key, draw_key = jax.random.split(cstate.key)
    idx = draw_tasks(draw_key, cstate.draws, s, sample_bias)
    losses_fn = lambda p: taskset.task_losses(p, batch)
    losses, jac = per_task_gradients(losses_fn, params, idx, m)
    run = lambda w, mask: lookahead_losses(losses_fn, optimizer, params, opt_state, jac, w,
                                           step_mask=mask, strategy=strategy,
                                           map_batch_size=map_batch_size, mesh=mesh) / losses
    ratios_full = run(lay.full_weights, None) if len(lay.full_weights) else None
    shared = taskset.shared_mask(params)
    ratios_shared = run(lay.shared_weights, shared) if len(lay.shared_weights) else None
    full_gram = gram(jac) if "first_order" in measures else None
    shared_gram = gram(jac, shared) if "cosine" in measures else None
    new = dict(cstate.measures)
    grid = (idx[:, None], idx[None, :])
    for name, (values, collected) in step_gains(
        ratios_full, ratios_shared, idx, lay, measures, full_gram=full_gram,
        shared_gram=shared_gram, losses=losses).items():
      acc = cstate.measures[name]
      new[name] = GainSums(acc.sums.at[grid].add(values * collected),
                           acc.counts.at[grid].add(collected))
    return CollectorState(key, cstate.draws.at[idx].add(1), new)

  return collect_step
