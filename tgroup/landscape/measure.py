"""Training-free task dissimilarity from per-sample one-step optima (Thakur et al. 2024).

At parameters θ_0, sample x and task t have the one-step optimum
``θ*_{x,t} = θ_0 − η ∇_θ ℓ_t(x)``. The dissimilarity of tasks i and j is the mean
over samples of ``‖θ*_{x,i} − θ*_{x,j}‖_1 = η ‖∇ℓ_i(x) − ∇ℓ_j(x)‖_1``, over every
parameter (the shared trunk and the two tasks' heads: other heads get no
gradient from either task). Lower means the tasks pull the weights alike.

Per-sample gradients are never materialised where a layer allows better. For
a dense layer ``y = a W + b`` the per-sample gradient of ℓ_t is ``a ⊗ δ_t`` for
the kernel and ``δ_t`` for the bias (δ_t = ∂ℓ_t/∂y), so

    ‖a⊗δ_i − a⊗δ_j‖_1 + ‖δ_i − δ_j‖_1 = (‖a‖_1 + 1) · ‖δ_i − δ_j‖_1.

Every ``nn.Dense`` call with a 2-D input (batch, features) is intercepted to
record its input ``a`` and to add a zero perturbation to its output, whose
gradient gives every δ_t of every sample in one backward pass per task. Other
parameters (convolutions, normalisation, dense layers applied twice or to
sequences) get exact per-sample gradients, in chunks of samples so memory stays
bounded. :func:`materialized_dissimilarity_sum` is the slow path that
materialises every per-sample gradient (the figure ``landscape_materialized_ms``
times it).

The δ's take one backward pass per task in general. At the default θ_0 every
task's head holds the same parameters (:func:`same_heads`), and then they take
one backward pass per head output: the heads are one function of the shared
features, so each task's trunk gradient is one linear map applied to the
gradient of its loss w.r.t. the head outputs (:func:`_shared_head_deltas`).
With one output per head every trunk layer's term becomes a weight per sample
times ``|G_i(x) − G_j(x)|``. On the synthetic benchmark (9 tasks, batch 256)
the pass took 0.33-0.39 ms against 0.65-0.84 ms per task (``launch.bench``, three runs).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from tgroup import mesh as mesh_lib
from tgroup import models
from tgroup import one_shot
from tgroup.data import Batch
from tgroup.errors import UserError
from tgroup.tasks import TaskSet

_INPUTS = "intermediates"   # collections, also lifted by MultiTaskModel's head vmap
_DELTAS = "perturbations"
_IN_NAME, _OUT_NAME = "landscape_dense_input", "landscape_dense_output"


def _record_dense(next_fun, args, kwargs, context):
  """Method interceptor: for rank-one dense layers, sow the input, perturb the output."""
  module = context.module
  if (isinstance(module, nn.Dense) and context.method_name == "__call__" and args
      and getattr(args[0], "ndim", 0) == 2):
    y = next_fun(*args, **kwargs)
    module.sow(_INPUTS, _IN_NAME, args[0])
    return module.perturb(_OUT_NAME, y, collection=_DELTAS)
  return next_fun(*args, **kwargs)


def _recorded_outputs(taskset: TaskSet, variables, batch: Batch):
  """The model's predictions, and the recorded dense inputs."""
  with nn.intercept_methods(_record_dense):
    preds, state = taskset.model.apply(variables, batch.inputs, mutable=[_INPUTS])
  return preds, state.get(_INPUTS, {})


def _weighted_loss_sums(taskset: TaskSet, variables, batch: Batch):
  """``(m,)`` Σ_x w_x ℓ_t(x), and the recorded dense inputs.

  The gradient of the sums w.r.t. the per-sample output perturbations is per
  sample, since samples do not interact in the forward pass (eval mode).
  """
  preds, inputs = _recorded_outputs(taskset, variables, batch)
  per_sample = taskset.sample_losses(preds, batch.labels)
  return jnp.asarray(batch.weights, per_sample.dtype) @ per_sample, inputs


def _dense_layers(taskset: TaskSet, params, batch: Batch):
  """Inputs recorded per dense module path, and zero output perturbations."""
  with nn.intercept_methods(_record_dense):
    _, state = taskset.model.apply({"params": params}, batch.inputs,
                                   mutable=[_INPUTS, _DELTAS])
  return state.get(_INPUTS, {}), state.get(_DELTAS, {})


def _flatten(tree, prefix=()) -> dict[tuple, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) or hasattr(v, "items"):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


# Above this many elements, the (m, m, n) difference tensor is built one row at a time.
_BROADCAST_LIMIT = 2**22


def pairwise_l1(x: jax.Array) -> jax.Array:
  """``(m, n) -> (m, m)``: L1 distances between rows.

  All pairs at once while the (m, m, n) difference fits in ``_BROADCAST_LIMIT``
  elements (fastest), otherwise one row at a time (memory m·n).

  Examples:
    >>> pairwise_l1(jnp.array([[0., 1.], [2., 1.], [0., -1.]])).tolist()
    [[0.0, 2.0, 2.0], [2.0, 0.0, 4.0], [2.0, 4.0, 0.0]]
  """
  m, n = x.shape
  if m * m * n <= _BROADCAST_LIMIT:
    return jnp.abs(x[:, None] - x[None, :]).sum(-1)
  return jax.lax.map(lambda row: jnp.abs(x - row).sum(-1), x)


def fast_dissimilarity_sum(taskset: TaskSet, params, batch: Batch, *,
                           chunk_size: int = 32, task_heads: bool = True,
                           shared_head: bool = False):
  """Σ over the batch's (weighted) samples of ``‖∇ℓ_i(x) − ∇ℓ_j(x)‖_1``, ``(m, m)``.

  Dense layers use the factorisation; all other parameters exact per-sample
  gradients, ``chunk_size`` samples at a time.

  Per-task heads (a dense layer lifted over a leading task axis under
  ``params["heads"]``, as in :class:`tgroup.models.MultiTaskModel`) get a
  shortcut when ``task_heads``: task t's loss reaches only head t, so for
  i ≠ j the heads' share of ``‖∇ℓ_i − ∇ℓ_j‖_1`` is ``‖∇_{head i} ℓ_i‖_1 +
  ‖∇_{head j} ℓ_j‖_1``: m norms instead of m² differences over m heads (the
  heads' cost grows as m² instead of m³; with 9 tasks they were 22% of the
  columns). Whether task t's gradient really is zero on every other head is
  not assumed: the gradient mass that lands there is returned as ``leak``, and
  the sum is exact when it is 0 (:func:`landscape_dissimilarity` recomputes
  with ``task_heads=False`` otherwise, e.g. for a loss that couples tasks).

  ``shared_head=True`` is for a :class:`~tgroup.models.MultiTaskModel` whose
  heads all hold the same parameters (the default θ_0, :func:`same_heads`;
  the caller checks, see :func:`identical_heads`): one backward pass per head
  output instead of one per task (see :func:`_shared_head_deltas`).

  Returns:
    ``(total, leak)``: the ``(m, m)`` sum, and a scalar that is 0 unless the
    head shortcut was invalid for this batch.
  """
  m = taskset.num_tasks
  if shared_head:
    flat_inputs, deltas, scale = _shared_head_deltas(taskset, params, batch)
  else:
    (flat_inputs, deltas), scale = _per_task_deltas(taskset, params, batch), None
  flat_params = _flatten(params)
  fast_modules = {path[:-1] for path, recorded in flat_inputs.items() if len(recorded) == 1}
  trunk_modules = sorted(module for module in fast_modules if module[0] != "heads")
  head_modules = sorted(module for module in fast_modules if module[0] == "heads")

  def weight(module):
    """``‖a‖_1 + 1`` per sample (the 1 if the layer has a bias): ``(..., B, 1)``."""
    (a,) = flat_inputs[module + (_IN_NAME,)]        # (..., B, in); leading: lifted heads
    has_bias = module + ("bias",) in flat_params
    return jnp.abs(a).sum(-1, keepdims=True) + (1.0 if has_bias else 0.0)

  # (‖a‖_1 + 1)·‖δ_i − δ_j‖_1 = ‖(‖a‖_1 + 1)·δ_i − (‖a‖_1 + 1)·δ_j‖_1 as the weight is
  # positive: scale each sample's δ, lay every layer and sample end to end, and take
  # one L1 distance per task pair over that long axis (short per-layer reductions
  # ran ~5x slower per element on CPU).
  scaled = []
  eye = jnp.eye(m, dtype=batch.weights.dtype)
  leak = jnp.zeros((), batch.weights.dtype)
  if scale is not None:
    # One output per head: every dense trunk layer's δ_t(x) is G_t(x)·v(x) for a
    # task-free v, so its term is (‖a‖_1 + 1)‖v‖_1·|G_i(x) − G_j(x)|: all of them
    # fold into one weight per sample (see _shared_head_deltas).
    g_sum, norms = scale
    per_sample = sum(weight(module)[..., 0] * norms[module] for module in trunk_modules)
    scaled.append((g_sum * per_sample).reshape(m, -1))
  else:
    scaled += [(deltas[module] * weight(module)).reshape(m, -1) for module in trunk_modules]
  for module in head_modules:
    delta = deltas[module]                          # (m tasks, m heads, B, out)
    w = weight(module)                              # (m heads, B, 1)
    if task_heads and delta.shape[:2] == (m, m):
      own = jnp.abs(jnp.diagonal(delta, axis1=0, axis2=1) * jnp.moveaxis(w, 0, -1))
      own = own.reshape(-1, m).sum(0)                              # task t on head t
      # Row t of diag(own) is own_t·e_t, and ‖own_i·e_i − own_j·e_j‖_1 = own_i + own_j
      # for i ≠ j: m columns stand in for the heads' m·B in the one L1 pass below.
      scaled.append(jnp.diag(own))
      # Mass of task t's gradient on head h ≠ t; as a matrix-vector product
      # (a masked sum over the (m, m, B, out) block measured 2x slower on CPU).
      per_pair = jnp.abs(delta).reshape(m * m, -1) @ jnp.ones(delta[0, 0].size, delta.dtype)
      leak = leak + (1 - eye).reshape(-1) @ per_pair
    else:
      scaled.append((delta * w).reshape(m, -1))
  total = pairwise_l1(jnp.concatenate(scaled, axis=1)) if scaled else jnp.zeros((m, m))

  is_fast = lambda path: path[:-1] in fast_modules
  rest = {p: v for p, v in flat_params.items() if not is_fast(p)}
  if rest:
    total = total + _exact_sum(taskset, params, batch, set(rest), chunk_size)
  return total, leak


def _zero_perturbations(taskset: TaskSet, params, batch: Batch):
  # Shapes only: the one forward pass is the one inside the caller's VJP.
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                      jax.eval_shape(lambda: _dense_layers(taskset, params, batch)[1]))


def _per_task_deltas(taskset: TaskSet, params, batch: Batch):
  """Recorded dense inputs, and every dense output's δ_t: one backward pass per task."""
  m = taskset.num_tasks
  loss_of_perturbation = lambda pert: _weighted_loss_sums(
      taskset, {"params": params, _DELTAS: pert}, batch)
  _, vjp, inputs = jax.vjp(loss_of_perturbation, _zero_perturbations(taskset, params, batch),
                           has_aux=True)
  (deltas,) = jax.vmap(vjp)(jnp.eye(m, dtype=batch.weights.dtype))
  return _flatten(inputs), {k[:-1]: v for k, v in _flatten(deltas).items()}


def _shared_head_deltas(taskset: TaskSet, params, batch: Batch):
  """Dense δ's by linearity when every head holds the same parameters.

  Write ``g[t, h](x)`` for the gradient of task t's loss at sample x w.r.t. head
  h's output (C numbers). The heads are one function of the shared features,
  so the trunk's per-sample gradient of ℓ_t is the head's backward map applied
  to ``G_t(x) = Σ_h g[t, h](x)``, and head h's own gradients that map applied
  to ``g[t, h](x)``. The map is linear: C backward passes through head 0 (one
  per output coordinate, every sample at once) give it, and the m tasks'
  δ's are C-term sums. With C = 1, ``δ_t(x) = G_t(x)·v(x)`` in every trunk
  layer and only ``‖v(x)‖_1`` is kept.

  Returns:
    ``(inputs, deltas, scale)``: ``deltas`` maps a dense head module to ``(m tasks,
    m heads, B, out)`` and, when C > 1, a dense trunk module to ``(m, B, out)``
    (as :func:`_per_task_deltas` does); ``scale`` is ``(G, norms)`` when C = 1
    (``G`` of shape ``(m, B)``, ``norms`` a trunk module's ``‖v‖_1`` of shape
    ``(B,)``), else None.
  """
  m = taskset.num_tasks
  outputs = lambda pert: _recorded_outputs(taskset, {"params": params, _DELTAS: pert}, batch)
  preds, vjp_model, inputs = jax.vjp(outputs, _zero_perturbations(taskset, params, batch),
                                     has_aux=True)
  weights = jnp.asarray(batch.weights, preds.dtype)
  _, vjp_loss = jax.vjp(lambda p: weights @ taskset.sample_losses(p, batch.labels), preds)
  (g,) = jax.vmap(vjp_loss)(jnp.eye(m, dtype=preds.dtype))       # (m, m, B, *out)
  out_shape = preds.shape[2:]
  c = int(np.prod(out_shape, dtype=int))
  g = g.reshape(m, m, -1, c)                                      # (task, head, B, C)
  # Cotangent k: 1 on output coordinate k of head 0, for every sample.
  b = preds.shape[1]
  units = jnp.zeros((c, m, b, c), preds.dtype).at[:, 0].set(
      jnp.broadcast_to(jnp.eye(c, dtype=preds.dtype)[:, None, :], (c, b, c)))
  (maps,) = jax.vmap(vjp_model)(units.reshape((c,) + preds.shape))
  maps = {k[:-1]: v for k, v in _flatten(maps).items()}          # (C, [heads,] B, out)
  g_sum = g.sum(1)                                                # (m, B, C)
  deltas, norms = {}, {}
  for module, v in maps.items():
    if module[0] == "heads":
      # Head 0's map serves every head; head h's δ for task t is that map of g[t, h].
      deltas[module] = jnp.einsum("thbc,cbo->thbo", g, v[:, 0])
    elif c == 1:
      norms[module] = jnp.abs(v[0]).sum(-1)
    else:
      deltas[module] = jnp.einsum("tbc,cbo->tbo", g_sum, v)
  scale = (g_sum[..., 0], norms) if c == 1 else None
  return _flatten(inputs), deltas, scale


def _exact_sum(taskset: TaskSet, params, batch: Batch, paths: set, chunk_size: int):
  """Per-sample gradients of the parameters at ``paths``, chunk by chunk."""
  flat = _flatten(params)
  keys = sorted(paths)

  def per_sample(x, y, w):
    def losses(sub):
      full = _unflatten({**flat, **dict(zip(keys, sub))})
      preds = taskset.predict(full, jax.tree.map(lambda a: a[None], x))
      return taskset.sample_losses(preds, y[None])[0] * w
    jac = jax.jacrev(losses)([flat[k] for k in keys])        # leaves (m, *shape)
    return pairwise_l1(jnp.concatenate([j.reshape(j.shape[0], -1) for j in jac], axis=1))

  sums = jax.lax.map(lambda xyw: per_sample(*xyw),
                     (batch.inputs, batch.labels, jnp.asarray(batch.weights)),
                     batch_size=chunk_size)
  return sums.sum(0)


def _unflatten(flat: dict[tuple, Any]) -> dict:
  out: dict = {}
  for path, v in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = v
  return out


def materialized_dissimilarity_sum(taskset: TaskSet, params, batch: Batch, *,
                                   chunk_size: int = 32) -> jax.Array:
  """The slow path: every per-sample, per-task gradient of every parameter, in chunks."""
  return _exact_sum(taskset, params, batch, set(_flatten(params)), chunk_size)


def _pass(taskset, params, batch, method, task_heads=True, shared_head=False):
  """One batch's ``(sum, leak)``; ``leak`` is 0 for the materialised path."""
  if method == "fast":
    return fast_dissimilarity_sum(taskset, params, batch, task_heads=task_heads,
                                  shared_head=shared_head)
  return materialized_dissimilarity_sum(taskset, params, batch), jnp.zeros(())


_STATIC = {"static_argnums": (0, 3), "static_argnames": ("task_heads", "shared_head")}
_jitted = jax.jit(_pass, **_STATIC)
# For a few passes compile time outweighs run time: the synthetic pass compiled in
# 0.06-0.07 s instead of 0.27-0.30 s and its first run took as long (13-16 ms).
_jitted_once = one_shot.jit_once(_pass, **_STATIC)
# At most this many passes (batches × initialisations) use _jitted_once.
ONE_SHOT_PASSES = 4


def same_heads(params):
  """θ_0 with every task's head equal to task 0's (heads stacked on a leading axis).

  Why: with independently initialised heads, each task's gradient reaches the
  trunk through its own random head, so at θ_0 the tasks' one-step optima differ
  by independent random directions and carry no sign of which tasks are alike
  (measured on the planted benchmark: within/across-cluster dissimilarity ratio
  0.96–1.01, adjusted Rand index ≈ 0 in 10/10 runs). With identical heads they
  differ only through the tasks' losses (ratio 0.55–0.85, README).
  """
  if "heads" not in params:
    raise UserError("head_init='same' needs parameters with a 'heads' entry stacked on a task "
                    "axis (tgroup.models.MultiTaskModel); use head_init='independent'")
  # On the host: eager jnp slicing and broadcasting would compile a program per
  # leaf shape (0.1-0.2 s measured) to copy a few hundred numbers.
  return dict(params, heads=jax.tree.map(lambda h: np.repeat(np.asarray(h)[:1], len(h), 0),
                                         params["heads"]))


def identical_heads(taskset: TaskSet, params) -> bool:
  """Whether ``params`` give every task's head the same parameters, in a
  :class:`~tgroup.models.MultiTaskModel` (then the fast path needs one backward
  pass per head output, not one per task: ``shared_head`` of
  :func:`fast_dissimilarity_sum`). Checked on the host, on concrete values.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> p = ts.init_params(jax.random.key(0))
    >>> identical_heads(ts, p), identical_heads(ts, same_heads(p))
    (False, True)
  """
  if not isinstance(taskset.model, models.MultiTaskModel) or "heads" not in params:
    return False
  leaves = [np.asarray(h) for h in jax.tree.leaves(params["heads"])]
  return all(len(h) == taskset.num_tasks and (h == h[:1]).all() for h in leaves)


def landscape_dissimilarity(taskset: TaskSet, *, num_samples: int = 256,
                            init_seeds=(0,), params=None, batch_size: int = 256,
                            step_size: float = 1.0, method: str = "fast",
                            head_init: str = "same", mesh: Mesh | None = None):
  """The ``(m, m)`` dissimilarity, averaged over samples and initialisations.

  Args:
    taskset: the problem; samples are the first ``num_samples`` training samples.
    num_samples: shared samples averaged over.
    init_seeds: random initialisations θ_0 averaged over (ignored with ``params``).
    params: a user's θ_0 (e.g. a checkpoint) instead of random initialisations.
    head_init: for random θ_0, ``same`` (every head a copy of task 0's, see
      :func:`same_heads`) or ``independent`` (each head its own draw).
    batch_size: samples per jitted pass.
    step_size: η of the one-step optima (a common scale; grouping ignores it).
    method: ``fast`` (factorised dense layers) or ``materialized``.
    mesh: split each batch of samples over its ``data`` axis
      (:mod:`tgroup.mesh`); None: one device.

  Returns:
    float64 NumPy ``(m, m)``, symmetric, zero diagonal.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> d = landscape_dissimilarity(ts, num_samples=64, batch_size=32)
    >>> d.shape, bool((d.diagonal() == 0).all()), bool((d == d.T).all())
    ((4, 4), True, True)
  """
  if method not in ("fast", "materialized"):
    raise ValueError(f"method must be fast or materialized, got {method!r}")
  if head_init not in ("same", "independent"):
    raise UserError(f"head_init must be same or independent, got {head_init!r}")
  taskset.check()
  if taskset.num_tasks < 2:
    raise UserError(f"a dissimilarity between tasks needs at least two tasks; the TaskSet has "
                    f"only {taskset.tasks[0]!r}")
  n = min(num_samples, len(taskset.train))
  if params is not None:
    starts = [params]
  else:
    # Initialised once and never trained: compiled for compile time (one_shot).
    starts = [taskset.init_params(jax.random.key(s), once=True) for s in init_seeds]
    if head_init == "same":
      starts = [same_heads(p) for p in starts]
  total = np.zeros((taskset.num_tasks, taskset.num_tasks))
  task_heads = True
  passes = -(-n // batch_size) * len(starts)
  run = _jitted_once if passes <= ONE_SHOT_PASSES else _jitted
  for theta in starts:
    shared_head = identical_heads(taskset, theta)
    if mesh is not None:
      theta = mesh_lib.put(theta, mesh_lib.replicated(mesh))
    seen = 0
    rows = mesh_lib.load_rows(mesh, batch_size)
    for batch in mesh_lib.read(functools.partial(taskset.train.eval_batches, batch_size), rows):
      if seen >= n:
        break
      keep = (np.arange(seen, seen + batch_size) < n)[slice(None) if rows is None else rows]
      batch = mesh_lib.put_batch(batch._replace(weights=batch.weights * keep), mesh, batch_size)
      part, leak = mesh_lib.settle(run(taskset, theta, batch, method, task_heads=task_heads,
                                       shared_head=shared_head), mesh)
      if task_heads and float(leak) != 0.0:   # not `> 0`: a NaN leak is no proof either
        # A task's loss reaches another task's head: the shortcut does not hold
        # for this model, here or on later batches.
        task_heads = False
        part, _ = run(taskset, theta, batch, method, task_heads=False, shared_head=shared_head)
      total += np.asarray(part, np.float64)
      seen += batch_size
  d = step_size * total / (n * len(starts))
  d = (d + d.T) / 2  # exact in arithmetic; removes rounding asymmetry
  np.fill_diagonal(d, 0.0)
  return d
