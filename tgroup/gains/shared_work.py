"""Lookaheads that share work across combinations, exactly (docs/design.md §2.3).

For an optimizer whose update is affine in the gradient given its state (SGD,
momentum, Nesterov, weight decay, learning-rate schedules, chains of these), the
update of combination row w is

    u(w·J) = u0 + v ⊙ (w·J),   u0 = update(0),   v = ∂update/∂g at 0 along ones

(v by forward mode: no cancellation, unlike u(1) − u(0)). So
θ⁺_w = θ + u0 + Σ_t w_t (v ⊙ g_t) needs no optimizer call per combination. A layer
that is linear in its parameters (``nn.Dense``, ``nn.Conv``) and whose input x does
not depend on the parameters (the first layer: its input is the batch) has

    f(x; θ_L⁺) = f(x; θ_L + u0_L) + Σ_t w_t f(x; v_L ⊙ g_t,L):

one product for the fixed part and s per step, after which each combination only
recombines s outputs. For ``nn.Dense`` with a v uniform over the kernel (a scalar
c), ``x (c xᵀ δ_t) = c (x xᵀ) δ_t`` with δ_t task t's gradient w.r.t. the layer's
output: the per-task kernel gradient of that layer is never formed (the Gram
path). Deeper layers' inputs change per combination, so they are stepped as usual.

The path is decided once per run, eagerly, by :func:`plan`: whether the
optimizer qualifies by :func:`probe`, and (under ``auto``) whether some layer's
work is worth sharing by :func:`find_layers` and :func:`choose_layers` on
abstract shapes. The collection step finds and chooses the same layers when it
is traced.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
from jax._src import core as jax_core  # trace_ctx: which trace a layer is called under
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import one_shot
from tgroup.errors import UserError
from tgroup.gains.rows import backward_rows

LOOKAHEADS = ("auto", "shared", "general")
NOT_AFFINE = "optimizer update is not affine in the gradient"

# The probe: gradients at these scales times N(0, 1), from a state advanced by a
# few updates with N(0, 1) gradients. A clipping threshold, Adam's normalisation
# or any other nonlinearity shows at 1e3 or 1e-3 if not at 1.
PROBE_SCALES = (1e-3, 1.0, 1e3)
PROBE_WARMUP = 3
# Relative to the update's size: float32 rounding of u0 + v ⊙ g is ~1e-7; a
# nonlinear update misses by O(1) at some scale.
PROBE_TOLERANCE = 1e-4

# Layers whose output may be shared: linear in their parameters (kernel and
# bias together), by exact type, since a subclass may override __call__.
LINEAR_LAYERS = (nn.Dense, nn.Conv)
# A shared layer keeps s outputs (one per drawn task) for the whole step; under
# ``auto`` a layer whose s outputs exceed this stays per combination.
LAYER_BYTES = 1 << 30


class Plan(NamedTuple):
  """Which lookahead path a run takes.

  Attributes:
    path: ``shared`` or ``general``.
    reason: why ``general`` (None for ``shared``).
    uniform: for ``shared``, a pytree like the parameters of Python bools: True
      where v is one number over the leaf (the Gram path needs it on a kernel).
  """
  path: str
  reason: str | None
  uniform: Any = None

  def settings(self) -> dict:
    """What a run records: ``{"lookahead": path}``, with ``lookahead_reason`` for general."""
    return {"lookahead": self.path, **({"lookahead_reason": self.reason} if self.reason else {})}


def affine_parts(optimizer: optax.GradientTransformation, opt_state, params):
  """``(u0, v)``: the update at a zero gradient and its derivative along ones (forward mode)."""
  zeros = jax.tree.map(jnp.zeros_like, params)
  ones = jax.tree.map(jnp.ones_like, params)
  return jax.jvp(lambda g: optimizer.update(g, opt_state, params)[0], (zeros,), (ones,))


def _probe_errors(optimizer, params, warm, g):
  """Per leaf: the worst relative miss of ``u0 + v ⊙ g`` and v's spread over the leaf.

  ``params``, ``warm`` and ``g`` are N(0, 1) draws like the parameters: the
  state is advanced by updates with multiples of ``warm``, then probed with
  ``g`` at each of :data:`PROBE_SCALES`.
  """
  state = optimizer.init(params)
  for k in range(PROBE_WARMUP):  # a state that is not all zeros
    updates, state = optimizer.update(jax.tree.map(lambda x: (k + 1) * x, warm), state, params)
    params = optax.apply_updates(params, updates)
  u0, v = affine_parts(optimizer, state, params)
  worst = jax.tree.map(lambda x: jnp.zeros((), x.dtype), params)
  for scale in PROBE_SCALES:
    gs = jax.tree.map(lambda x: scale * x, g)
    u = optimizer.update(gs, state, params)[0]

    def miss(u, u0, v, g, worst):
      tiny = jnp.finfo(u.dtype).tiny
      size = jnp.max(jnp.abs(u0), initial=0) + jnp.max(jnp.abs(v * g), initial=0)
      err = jnp.max(jnp.abs(u - (u0 + v * g)), initial=0) / (size + tiny)
      # NaN (an optimizer that diverges at this scale) counts as a miss.
      return jnp.maximum(worst, jnp.where(jnp.isnan(err), jnp.inf, err))

    worst = jax.tree.map(miss, u, u0, v, gs, worst)
  spread = jax.tree.map(
      lambda v: (jnp.max(jnp.abs(v - v.reshape(-1)[0]), initial=0)
                 / (jnp.max(jnp.abs(v), initial=0) + jnp.finfo(v.dtype).tiny))
      if v.size else jnp.zeros((), v.dtype), v)
  return worst, spread


def probe(optimizer: optax.GradientTransformation, params_like) -> Plan:
  """Whether ``optimizer``'s update is affine in the gradient: the shared path's condition.

  Args:
    optimizer: an optax transformation.
    params_like: a pytree of arrays or ``jax.ShapeDtypeStruct`` (shapes and
      dtypes of the parameters; the values are drawn at random).

  Returns:
    A :class:`Plan`: ``shared`` (with which leaves have a uniform v), or
    ``general`` and why.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
    >>> probe(optax.sgd(0.1, momentum=0.9, nesterov=True), params).path
    'shared'
    >>> probe(optax.adam(1e-3), params).reason
    'optimizer update is not affine in the gradient'
  """
  params_like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params_like)
  if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in jax.tree.leaves(params_like)):
    return Plan("general", "the parameters are not all floating point")
  # Drawn on the host: JAX's generator inlined per leaf made the probe's compilation
  # take seconds.
  rng = np.random.default_rng(0)
  draw = lambda: jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype),
                              params_like)
  try:
    # Runs once per run: compiled for compile time (tgroup.one_shot).
    worst, spread = one_shot.jit_once(functools.partial(_probe_errors, optimizer))(
        draw(), draw(), draw())
  except Exception as e:  # pylint: disable=broad-except  # any failure: the general path
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return Plan("general", f"optimizer update could not be probed ({type(e).__name__}"
                           f"{': ' + first[:200] if first else ''})")
  if not all(float(x) <= PROBE_TOLERANCE for x in jax.tree.leaves(worst)):
    return Plan("general", NOT_AFFINE)
  return Plan("shared", None, jax.tree.map(lambda x: bool(x <= PROBE_TOLERANCE), spread))


@functools.lru_cache(maxsize=16)
def _cached_probe(optimizer, treedef, shapes) -> Plan:
  return probe(optimizer, treedef.unflatten([jax.ShapeDtypeStruct(s, d) for s, d in shapes]))


def param_shapes(taskset):
  """The TaskSet's parameter shapes and dtypes (abstract: nothing is initialised)."""
  inputs = jax.tree.map(np.asarray, next(iter(taskset.train.eval_batches(1))).inputs)
  return jax.eval_shape(lambda key: taskset.model.init(key, inputs)["params"],
                        jax.random.key(0))


def plan(taskset, lookahead: str = "auto", sample_tasks: int | None = None) -> Plan:
  """The lookahead path of a run (``lookahead``: ``auto``, ``shared`` or ``general``).

  ``auto`` takes the shared path when :func:`probe` finds the optimizer's update
  affine in the gradient and some layer's work is worth sharing with
  ``sample_tasks`` drawn tasks (None: all) (:func:`choose_layers`: without one,
  the shared path saves only the optimizer call, which was measured to gain
  nothing); else the general one. ``shared`` insists.

  Raises:
    UserError: an unknown ``lookahead``, or ``shared`` with an optimizer that
      does not qualify.
  """
  if lookahead not in LOOKAHEADS:
    raise UserError(f"lookahead must be auto, shared or general, got {lookahead!r}")
  if lookahead == "general":
    return Plan("general", "requested (lookahead=general)")
  leaves, treedef = jax.tree.flatten(param_shapes(taskset))
  shapes = tuple((tuple(x.shape), np.dtype(x.dtype)) for x in leaves)
  try:
    result = _cached_probe(taskset.optimizer, treedef, shapes)
  except TypeError:  # an optimizer that cannot be hashed: probe without the cache
    result = probe(taskset.optimizer, treedef.unflatten(
        [jax.ShapeDtypeStruct(s, d) for s, d in shapes]))
  if lookahead == "shared" and result.path != "shared":
    raise UserError(f"lookahead=shared needs an optimizer update that is affine in the gradient "
                    f"(SGD, momentum, weight decay, schedules); here: {result.reason}; use "
                    "lookahead=auto or general")
  if lookahead == "auto" and result.path == "shared":
    s = sample_tasks or taskset.num_tasks
    params = treedef.unflatten([jax.ShapeDtypeStruct(s_, d) for s_, d in shapes])
    batch = next(iter(taskset.train.eval_batches(taskset.batch_size)))
    layers = find_layers(taskset.task_losses, params, batch)
    if not choose_layers(layers, s, result.uniform):
      why = "; ".join(_not_worth(l, s) for l in layers) or (
          "no nn.Dense or nn.Conv layer takes the batch as its input")
      return Plan("general", f"no layer's work is worth sharing ({why})")
  return result


class Layer(NamedTuple):
  """A layer whose input does not depend on the parameters (see :func:`find_layers`)."""
  name: str                  # its module path, joined by "/"
  path: tuple[str, ...]      # its parameters: params[path[0]][path[1]]...
  module: nn.Module          # an unbound copy: applies with any parameters
  kind: str                  # "dense" or "conv"
  in_shape: tuple[int, ...]
  out: jax.ShapeDtypeStruct
  fan_in: int                # multiply-adds per output element


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _dependent_outputs(closed: jex_core.ClosedJaxpr, num_inputs: int) -> list[bool]:
  """Which outputs of ``closed`` depend on its first ``num_inputs`` inputs (forward,
  conservative).

  An equation with any dependent input has every output dependent; nested
  jaxprs (pjit, custom derivatives, loops) are equations like any other.
  """
  jaxpr = closed.jaxpr
  dependent = set(jaxpr.invars[:num_inputs])
  is_dep = lambda v: isinstance(v, jex_core.Var) and v in dependent
  for eqn in jaxpr.eqns:
    if any(is_dep(v) for v in eqn.invars):
      dependent.update(eqn.outvars)
  return [is_dep(v) for v in jaxpr.outvars]


def _current_trace():
  """JAX's current trace (a private attribute: None where a JAX version lacks it, and
  then no layer is shared)."""
  return getattr(getattr(jax_core, "trace_ctx", None), "trace", None)


def _layer_call(context) -> bool:
  return context.method_name == "__call__" and type(context.module) in LINEAR_LAYERS


def find_layers(loss_fn: Callable[..., jax.Array], params, *args) -> list[Layer]:
  """The ``nn.Dense`` / ``nn.Conv`` calls of ``loss_fn(params, *args)`` whose input
  does not depend on ``params``.

  Traced, never run (``params`` and ``args`` may be abstract): the model runs
  once under ``jax.make_jaxpr`` with a method interceptor that captures each
  layer call's input, and a dependence pass over the jaxpr keeps the inputs that
  do not depend on ``params``. Only layers called once, at the top level of the
  trace (not inside a lifted transform such as ``nn.vmap``), with their
  parameters at their module path, qualify.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> batch = next(ts.train.train_batches(16, seed=0))
    >>> [(l.name, l.fan_in) for l in find_layers(ts.task_losses, param_shapes(ts), batch)]
    [('trunk/Dense_0', 16)]
  """
  found, calls = {}, {}

  def capture(p, *args):
    top = _current_trace()

    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if _layer_call(context):
        path = tuple(context.module.path)
        calls[path] = calls.get(path, 0) + 1
        if top is not None and _current_trace() is top and len(args) == 1 and not kwargs:
          found[path] = (args[0], out, context.module.clone(parent=None))
      return out

    with nn.intercept_methods(interceptor):
      loss_fn(p, *args)
    return {"/".join(path): x for path, (x, _, _) in found.items() if calls[path] == 1}

  closed, inputs = jax.make_jaxpr(capture, return_shape=True)(_abstract(params),
                                                              *_abstract(args))
  names, _ = jax.tree.flatten_with_path(inputs)
  layers = []
  by_name = {"/".join(path): path for path in found}
  dependent = _dependent_outputs(closed, len(jax.tree.leaves(params)))
  for (key_path, x), dep in zip(names, dependent):
    path = by_name[key_path[0].key]
    _, out, module = found[path]
    try:
      own = functools.reduce(lambda tree, k: tree[k], path, params)
    except (KeyError, TypeError):
      continue
    kernel = own.get("kernel") if isinstance(own, dict) else None
    if dep or kernel is None or set(own) - {"kernel", "bias"}:
      continue
    layers.append(Layer("/".join(path), path, module,
                        "dense" if type(module) is nn.Dense else "conv", tuple(x.shape),
                        jax.ShapeDtypeStruct(out.shape, out.dtype),
                        int(math.prod(kernel.shape[:-1]))))
  return layers


class Choice(NamedTuple):
  layer: Layer
  gram: bool   # nn.Dense with a uniform v on its kernel: (x xᵀ) δ_t, no kernel gradient


def _shared_bytes(layer: Layer, s: int) -> int:
  return s * math.prod(layer.out.shape) * np.dtype(layer.out.dtype).itemsize


def _not_worth(layer: Layer, s: int) -> str:
  """Why ``auto`` does not share ``layer`` with ``s`` drawn tasks."""
  if layer.fan_in <= 2 * s:
    return f"{layer.name}: fan-in {layer.fan_in}, not above twice the {s} drawn tasks"
  return f"{layer.name}: its {s} outputs take over {LAYER_BYTES} bytes"


def choose_layers(layers: list[Layer], s: int, uniform, mode: str = "auto") -> list[Choice]:
  """Which found layers to share, and which of them by the Gram path.

  ``auto`` shares a layer when it pays: its fan-in (multiply-adds per output)
  exceeds 2s, since recombining a small layer's s outputs costs up to s per
  output and combination (measured with 9 tasks: the synthetic model's 16-input
  first layer is slower shared, a 64-input one faster), and its s outputs fit
  :data:`LAYER_BYTES`; the Gram path when its cost N²(in + s·width), N the rows,
  is below the 2·s·N·in·width of forming and applying s kernel gradients.
  ``all`` shares every found layer (Gram wherever v is uniform); ``none`` none.
  """
  if mode not in ("auto", "all", "none"):
    raise ValueError(f"shared layers must be auto, all or none, got {mode!r}")
  chosen = []
  for layer in layers if mode != "none" else []:
    if mode == "auto" and (layer.fan_in <= 2 * s or _shared_bytes(layer, s) > LAYER_BYTES):
      continue
    flat = functools.reduce(lambda tree, k: tree[k], layer.path, uniform)
    gram = layer.kind == "dense" and flat["kernel"]
    if gram and mode == "auto":
      rows, width = math.prod(layer.in_shape[:-1]), layer.out.shape[-1]
      gram = rows * (layer.fan_in + s * width) < 2 * s * layer.fan_in * width
    chosen.append(Choice(layer, bool(gram)))
  return chosen


def _replacing(outputs: dict[str, jax.Array], perturb: bool = False, inputs=None):
  """An interceptor: layer ``name``'s output becomes ``outputs[name]`` (or its
  computed output plus it, with ``perturb``); ``inputs`` collects their inputs."""
  def interceptor(next_fun, args, kwargs, context):
    name = "/".join(context.module.path) if _layer_call(context) else None
    if name not in outputs:
      return next_fun(*args, **kwargs)
    if inputs is not None:
      inputs[name] = args[0]
    return next_fun(*args, **kwargs) + outputs[name] if perturb else outputs[name]
  return nn.intercept_methods(interceptor)


class Base(NamedTuple):
  """What the base pass gives the shared lookaheads."""
  losses: jax.Array                 # (m,) L(θ)
  jac: Any                          # like params, leading axis s (dead where Gram)
  inputs: dict[str, jax.Array]      # each shared layer's input
  deltas: dict[str, jax.Array]      # (s, *out) gradient of each task w.r.t. its output


def base_pass(losses_fn, params, task_idx: jax.Array, num_tasks: int,
              choices: list[Choice], *, strategy: str = "map", chunk: int | None = None
              ) -> Base:
  """Losses, the Jacobian rows of ``task_idx``, and the shared layers' inputs and
  output gradients: one forward pass, s backward passes (in chunks, as
  :func:`tgroup.gains.rows.backward_rows`)."""
  zeros = {c.layer.name: jnp.zeros(c.layer.out.shape, c.layer.out.dtype) for c in choices}

  def fn(p, perturbation):
    inputs = {}
    with _replacing(perturbation, perturb=True, inputs=inputs):
      losses = losses_fn(p)
    return losses, inputs

  losses, vjp, inputs = jax.vjp(fn, params, zeros, has_aux=True)
  cotangents = jax.nn.one_hot(task_idx, num_tasks, dtype=losses.dtype)
  jac, deltas = backward_rows(vjp, cotangents, strategy=strategy, chunk=chunk)
  return Base(losses, jac, inputs, deltas)


def _subtree(tree, path):
  return functools.reduce(lambda t, k: t[k], path, tree)


def _layer_outputs(choice: Choice, base: Base, params, u0, v):
  """``(fixed, linear)``: f(x; θ_L + u0_L) and the s outputs f(x; v_L ⊙ g_t,L)."""
  layer = choice.layer
  x = base.inputs[layer.name]
  apply = lambda p: layer.module.apply({"params": p}, x)
  own, own_u0, own_v = (_subtree(t, layer.path) for t in (params, u0, v))
  fixed = apply(optax.apply_updates(own, own_u0))
  jac = _subtree(base.jac, layer.path)
  if not choice.gram:
    return fixed, jax.vmap(apply)(jax.tree.map(lambda vv, j: vv * j, own_v, jac))
  # x (c xᵀ δ_t) = c (x xᵀ) δ_t: the kernel gradient xᵀ δ_t is never formed.
  s = base.deltas[layer.name].shape[0]
  rows = x.reshape(-1, x.shape[-1])
  delta = base.deltas[layer.name].reshape(s, rows.shape[0], -1)
  c = own_v["kernel"].reshape(-1)[0]  # uniform over the kernel (the probe checked)
  linear = c * jnp.einsum("nk,skw->snw", rows @ rows.T, delta)
  if "bias" in own:
    linear = linear + (own_v["bias"] * jac["bias"])[:, None, :]
  return fixed, linear.reshape((s,) + tuple(layer.out.shape)).astype(fixed.dtype)


# When a step's per-task rows (s × the stepped parameters and shared outputs) hold
# at most this many numbers, combinations take dense products w · r; else each
# reads only the rows of its nonzero weights. Measured on this project's 2-core
# CPU: reading only the nonzero rows made the mlp784 step (9 tasks) 15% and its
# 40-task step 30% faster, but on the synthetic 16-16-16 model the extra small
# kernels made it 25% slower than the general path; mixing the two per leaf was
# slowest under vmap.
DENSE_COMBINE_SIZE = 1 << 16


def combination_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Combination rows ``(k, s)`` as ``(weights, indices, coefficients)``, the last two
  ``(k, nnz)``: each row's nonzero weights and their tasks.

  nnz is the most nonzero weights in a row (2 for pairs); shorter rows are
  padded with weight 0 on task 0.

  Examples:
    >>> _, idx, coef = combination_rows(np.array([[1., 1., 0.], [0., 2., 0.]]))
    >>> idx.tolist(), coef.tolist()
    ([[0, 1], [1, 0]], [[1.0, 1.0], [2.0, 0.0]])
  """
  weights = np.asarray(weights)
  nnz = max(1, int((weights != 0).sum(axis=1).max(initial=0)))
  # A stable sort puts each row's nonzero columns first, in column order.
  idx = np.argsort(weights == 0, axis=1, kind="stable")[:, :nnz].astype(np.int32)
  coef = np.take_along_axis(weights, idx, axis=1)
  return weights, np.where(coef != 0, idx, 0).astype(np.int32), coef


def make_row_fn(losses_fn, optimizer: optax.GradientTransformation, params, opt_state,
                base: Base, choices: list[Choice], *, step_mask=None):
  """``row -> (m,)`` task losses after a combination's step, by the shared path (a
  row of :func:`combination_rows`).

  Everything per step (u0, v, v ⊙ g_t, the shared layers' outputs) is computed
  here, once; the returned function only recombines. It closes over nothing of
  the shared layers' parameters' Jacobian rows, so XLA drops their computation
  where the Gram path replaces them.
  """
  u0, v = affine_parts(optimizer, opt_state, params)
  if step_mask is not None:  # TAG: only the shared trunk moves
    keep = lambda t: jax.tree.map(lambda x, k: x if k else jnp.zeros_like(x), t, step_mask)
    u0, v = keep(u0), keep(v)
  shared = {c.layer.name: _layer_outputs(c, base, params, u0, v) for c in choices}
  # Leaves of shared layers are never read in a lookahead (the layer's output is
  # replaced), so they stay at θ and carry no per-task rows.
  paths = [c.layer.path for c in choices]
  keyed, treedef = jax.tree_util.tree_flatten_with_path(params)
  skip = [any(tuple(getattr(k, "key", None) for k in key[:len(path)]) == path for path in paths)
          for key, _ in keyed]
  start = [p if sk else optax.apply_updates(p, u) for (_, p), u, sk in
           zip(keyed, treedef.flatten_up_to(u0), skip)]
  slopes = [None if sk else vv for vv, sk in zip(treedef.flatten_up_to(v), skip)]
  jac = [None if sk else j for j, sk in zip(treedef.flatten_up_to(base.jac), skip)]

  dense = (sum(j.size for j in jac if j is not None)
           + sum(linear.size for _, linear in shared.values())) <= DENSE_COMBINE_SIZE

  def one(row):
    w, idx, coef = row

    def combine(r):
      """Σ_t w_t r_t."""
      if dense:
        return jnp.tensordot(w.astype(r.dtype), r, axes=1)
      # Over the row's nonzero weights only (two for a pair): a combination reads
      # two of the s per-task rows, so its cost does not grow with s; elementwise,
      # so XLA fuses the reads into their use.
      return sum(coef[j].astype(r.dtype) * r[idx[j]] for j in range(idx.shape[0]))

    leaves = [p if j is None else p + (vv * combine(j)).astype(p.dtype)
              for p, vv, j in zip(start, slopes, jac)]
    outputs = {name: fixed + combine(linear).astype(fixed.dtype)
               for name, (fixed, linear) in shared.items()}
    if not outputs:
      return losses_fn(treedef.unflatten(leaves))
    with _replacing(outputs):
      return losses_fn(treedef.unflatten(leaves))

  return one

