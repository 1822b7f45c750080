"""One collection step as a pure function: per-task gradients, lookaheads, gains.

Per step and batch B, with the current parameters θ and optimizer state o:

1. one reverse pass gives the losses L(θ) and, vmapped over one-hot cotangents,
   the s-row Jacobian of the drawn tasks' losses (one gradient per task);
2. for every combination row w, the gradient ``w @ J`` goes through the real
   ``optimizer.update`` from o, giving θ⁺, and one forward pass gives L(θ⁺) for
   every task; the new optimizer state is dropped, so the training state never
   changes;
3. the ratios L(θ⁺)/L(θ) become the gains of each requested measure
   (docs/design.md §2). L is the training loss on B, or the TaskSet's
   ``lookahead_losses`` where it has them (a fixed scorer such as a validation
   objective; the steps still follow the training loss's gradients):

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
combination) or ``vmap`` (accelerators), chosen by ``strategy``, in chunks of
bounded size either way (:mod:`tgroup.gains.rows`), so a step's memory does not
grow with m² × parameters; so do the Jacobian's backward passes.

Step 2 has two paths (``lookahead``): ``general`` calls ``optimizer.update`` per
combination; ``shared`` (:mod:`tgroup.gains.shared_work`), for optimizers whose
update is affine in the gradient, steps every combination from two per-step
quantities and shares the work of layers whose input is the batch.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import optax

from tgroup.gains import combinations
from tgroup.gains import schedule
from tgroup.gains import shared_work
from tgroup.errors import UserError
from tgroup.gains.rows import backward_rows, map_rows


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


# vmap's default chunk: as many combinations at once as fit this many bytes of
# per-combination working set (stepped parameters, optimizer state, the forward
# pass's intermediates; see :func:`row_bytes`). Large enough that the synthetic
# benchmark's and mlp784's 45 combinations run unchunked (0.17 and 4.9 MB each by
# that estimate), small enough to leave most of an accelerator's memory to the rest.
VMAP_CHUNK_BYTES = 1 << 30


def resolve_strategy(strategy: str, map_batch_size: int | None = None
                     ) -> tuple[str, int | None]:
  """(``map`` or ``vmap``, combinations per chunk).

  ``auto`` is ``lax.map`` in chunks of :data:`CPU_MAP_BATCH_SIZE` on CPU (vmap
  would copy the weights once per combination) and ``vmap`` on accelerators.
  An explicit ``map_batch_size`` wins: under ``map``, the combinations per loop
  iteration (None: one at a time); under ``vmap``, the chunk (None: as many as
  fit :data:`VMAP_CHUNK_BYTES`, chosen when the step is traced).
  """
  if strategy == "auto":
    if jax.default_backend() != "cpu":
      return "vmap", map_batch_size
    return "map", map_batch_size or CPU_MAP_BATCH_SIZE
  if strategy in ("map", "vmap"):
    return strategy, map_batch_size
  raise ValueError(f"strategy must be auto, map or vmap, got {strategy!r}")


def _bytes(tree) -> int:
  return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def row_bytes(losses_fn: Callable[[Any], jax.Array], params, opt_state) -> int:
  """An upper bound on one combination's working set: the stepped parameters and
  their gradient, the optimizer state, and every intermediate of the forward
  pass (top-level values of its jaxpr; XLA fuses and reuses many of them)."""
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), params)
  jaxpr = jax.make_jaxpr(losses_fn)(abstract).jaxpr
  activations = sum(_bytes([v.aval for v in eqn.outvars]) for eqn in jaxpr.eqns)
  return 2 * _bytes(params) + _bytes(opt_state) + activations


def vmap_chunk(per_row: int, rows: int) -> int:
  """vmap's default chunk for ``rows`` combinations of ``per_row`` bytes each.

  Examples:
    >>> vmap_chunk(per_row=100 << 20, rows=45)   # 100 MiB each: 10 per GiB
    10
    >>> vmap_chunk(per_row=1 << 20, rows=45)     # all at once
    45
  """
  return int(max(1, min(rows, VMAP_CHUNK_BYTES // max(per_row, 1))))


def draw_tasks(key: jax.Array, draws: jax.Array, s: int, bias: str,
               cover: np.ndarray | None = None) -> jax.Array:
  """``s`` distinct task indices, sorted.

  ``uniform`` draws every subset of size s equally often; ``rare`` draws without
  replacement with probability proportional to ``1 / (1 + draws − min(draws))``
  (Gumbel top-k), so tasks drawn less often so far catch up; ``pairs`` takes the
  next row of ``cover`` (:func:`tgroup.gains.schedule.pair_cover`, cycled): the
  n-th collected step, n = draws so far / s, draws row n mod L.
  """
  m = draws.shape[0]
  if s == m:
    return jnp.arange(m)
  if bias == "pairs":
    if cover is None:
      raise ValueError("bias 'pairs' needs the cover to cycle through")
    n = draws.sum() // s
    return jnp.asarray(cover)[n % len(cover)]
  if bias == "uniform":
    logits = jnp.zeros(m)
  elif bias == "rare":
    logits = -jnp.log1p((draws - draws.min()).astype(jnp.float32))
  else:
    raise ValueError(f"bias must be uniform, rare or pairs, got {bias!r}")
  _, idx = jax.lax.top_k(logits + jax.random.gumbel(key, (m,)), s)
  return jnp.sort(idx)


def lookahead_losses(losses_fn: Callable[[Any], jax.Array], optimizer: optax.GradientTransformation,
                     params, opt_state, jac, weights: np.ndarray, *, step_mask=None,
                     strategy: str = "map", map_batch_size: int | None = None,
                     mesh: Mesh | None = None) -> jax.Array:
  """Task losses after one real optimizer step per combination row (the general path).

  Args:
    losses_fn: ``params -> (m,)`` task losses on the batch.
    optimizer: the training optax transformation.
    params, opt_state: the current training state (not modified).
    jac: pytree like params with a leading axis of s per-task gradients.
    weights: ``(k, s)`` combination rows.
    step_mask: optional pytree of Python bools; False leaves keep their value
      (TAG steps only the shared trunk).
    strategy: ``map`` (``lax.map``) or ``vmap``.
    map_batch_size: combinations per chunk (see :func:`tgroup.gains.rows.map_rows`).
    mesh: split the rows over its ``combos`` axis: each device steps and
      evaluates its share.

  Returns:
    ``(k, m)`` losses L(θ⁺) of every task after each combination's step.
  """
  def one(w):
    grads = jax.tree.map(lambda j: jnp.tensordot(w, j, axes=1), jac)
    updates, _ = optimizer.update(grads, opt_state, params)
    if step_mask is not None:
      updates = jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, step_mask)
    return losses_fn(optax.apply_updates(params, updates))

  return map_rows(one, weights, strategy=strategy, chunk=map_batch_size, mesh=mesh)


def per_task_gradients(losses_fn, params, task_idx: jax.Array, num_tasks: int, *,
                       strategy: str = "map", chunk: int | None = None):
  """Losses ``(m,)`` and the Jacobian rows of tasks ``task_idx``: one forward pass and
  one backward pass per row (see :func:`backward_rows`)."""
  losses, vjp = jax.vjp(losses_fn, params)
  cotangents = jax.nn.one_hot(task_idx, num_tasks, dtype=losses.dtype)
  (jac,) = backward_rows(vjp, cotangents, strategy=strategy, chunk=chunk)
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
                      map_batch_size: int | None = None, mesh: Mesh | None = None,
                      lookahead: str | shared_work.Plan = "auto", shared_layers: str = "auto",
                      principled_estimate: str = "lookahead"):
  """``collect_step(cstate, params, opt_state, batch) -> cstate``, a pure function to jit.

  Args:
    taskset: the problem (losses, optimizer, shared-parameter mask).
    measures: names among :data:`tgroup.gains.combinations.MEASURES`.
    sample_tasks: draw this many tasks per step (None: all).
    sample_bias: ``uniform``, ``rare`` or ``pairs`` (see :func:`draw_tasks`).
    strategy: ``auto``, ``map`` or ``vmap`` (see :func:`resolve_strategy`).
    map_batch_size: see :func:`resolve_strategy`.
    mesh: split the lookaheads over its ``combos`` axis (see
      :func:`map_rows`); the batch is split over ``data`` by its placement.
    lookahead: ``auto``, ``shared`` or ``general`` (see
      :func:`tgroup.gains.shared_work.plan`, which decides here, eagerly), or a
      plan already made.
    shared_layers: on the shared path, which layers whose input is the batch
      share their work: ``auto`` (where it pays), ``all`` or ``none`` (see
      :func:`tgroup.gains.shared_work.choose_layers`).
    principled_estimate: ``lookahead`` (exact) or ``first_order``: the
      ``principled`` measure from the first-order expansion of the self-pair
      gain (the ``first_order`` measure's values: one Jacobian, no lookahead).

  Returns:
    The step; its ``plan`` attribute is the :class:`~tgroup.gains.shared_work.Plan`
    it follows.

  Raises:
    UserError: ``lookahead="shared"`` with an optimizer that does not qualify.
  """
  m = taskset.num_tasks
  s = m if sample_tasks is None else sample_tasks
  measures = tuple(measures)
  if principled_estimate not in ("lookahead", "first_order"):
    raise ValueError(f"principled_estimate must be lookahead or first_order, "
                     f"got {principled_estimate!r}")
  # Where each accumulated measure's values come from this step.
  source = {name: name for name in measures}
  if principled_estimate == "first_order" and "principled" in measures:
    source["principled"] = "first_order"
  computed = tuple(dict.fromkeys(source.values()))
  lay = combinations.layout(s, computed)
  cover = schedule.pair_cover(m, s) if sample_bias == "pairs" and s < m else None
  strategy, map_batch_size = resolve_strategy(strategy, map_batch_size)
  optimizer = taskset.optimizer
  scorer = taskset.lookahead_losses
  if scorer is not None and "first_order" in computed:
    raise UserError("the first_order measure (and principled_estimate=first_order) expands the "
                    "training loss, but this TaskSet scores lookaheads on its lookahead_losses; "
                    "use the exact lookahead measures (principled, tag) or cosine")
  if isinstance(lookahead, shared_work.Plan):
    plan = lookahead
  elif lookahead == "auto" and not lay.num_lookaheads:  # cosine, first_order: nothing to probe
    plan = shared_work.Plan("general", "the measures take no lookahead steps")
  elif scorer is not None:
    if lookahead == "shared":
      raise UserError("lookahead=shared needs lookaheads scored on the step's batch, but this "
                      "TaskSet scores them on its lookahead_losses; use auto or general")
    plan = shared_work.Plan("general", "lookaheads are scored on the TaskSet's lookahead_losses")
  else:
    plan = shared_work.plan(taskset, lookahead, s)

  def collect_step(cstate: CollectorState, params, opt_state, batch) -> CollectorState:
    key, draw_key = jax.random.split(cstate.key)
    idx = draw_tasks(draw_key, cstate.draws, s, sample_bias, cover)
    losses_fn = lambda p: taskset.task_losses(p, batch)
    chunk = map_batch_size
    # Backward rows under map: one at a time; under vmap: as many as the bytes allow.
    jac_chunk = None
    if strategy == "vmap" and chunk is None:
      per_row = row_bytes(losses_fn if scorer is None else scorer, params, opt_state)
      chunk = vmap_chunk(per_row, max(len(lay.full_weights), len(lay.shared_weights)))
      jac_chunk = vmap_chunk(per_row, s)
    elif strategy == "vmap":
      jac_chunk = chunk
    if plan.path == "shared":
      choices = shared_work.choose_layers(
          shared_work.find_layers(taskset.task_losses, params, batch), s, plan.uniform,
          shared_layers)
      base = shared_work.base_pass(losses_fn, params, idx, m, choices, strategy=strategy,
                                     chunk=jac_chunk)
      losses, jac = base.losses, base.jac
      row_fn = lambda mask: shared_work.make_row_fn(losses_fn, optimizer, params, opt_state,
                                                    base, choices, step_mask=mask)
      run = lambda w, mask: map_rows(row_fn(mask), shared_work.combination_rows(w),
                                     strategy=strategy, chunk=chunk, mesh=mesh) / losses
    else:
      losses, jac = per_task_gradients(losses_fn, params, idx, m, strategy=strategy,
                                       chunk=jac_chunk)
      # Steps follow the training loss's gradients; they are scored on the scorer if any.
      score_fn = losses_fn if scorer is None else scorer
      before = losses if scorer is None else scorer(params)
      run = lambda w, mask: lookahead_losses(score_fn, optimizer, params, opt_state, jac, w,
                                             step_mask=mask, strategy=strategy,
                                             map_batch_size=chunk, mesh=mesh) / before
    ratios_full = run(lay.full_weights, None) if len(lay.full_weights) else None
    shared = taskset.shared_mask(params)
    ratios_shared = run(lay.shared_weights, shared) if len(lay.shared_weights) else None
    full_gram = gram(jac) if "first_order" in computed else None
    shared_gram = gram(jac, shared) if "cosine" in computed else None
    new = dict(cstate.measures)
    grid = (idx[:, None], idx[None, :])
    step = step_gains(ratios_full, ratios_shared, idx, lay, computed, full_gram=full_gram,
                      shared_gram=shared_gram, losses=losses)
    for name in measures:
      values, collected = step[source[name]]
      acc = cstate.measures[name]
      new[name] = GainSums(acc.sums.at[grid].add(values * collected),
                           acc.counts.at[grid].add(collected))
    return CollectorState(key, cstate.draws.at[idx].add(1), new)

  collect_step.plan = plan  # the path it takes, for the run's settings
  return collect_step
