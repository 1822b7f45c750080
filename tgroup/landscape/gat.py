"""Task embeddings from the task graph: a graph attention network trained as an auto-encoder.

Thakur et al. 2024 learn task embeddings with a graph attention network (GAT)
over the task graph, so that two tasks end up close when their neighbourhoods
agree, not only when their own pairwise dissimilarity is small: the embedding
carries higher-order structure (a task similar to every member of a group is
pulled into it even if one pairwise measurement is noisy). There are no labels
to train it on — the grouping is what we want to find — so the network is
trained self-supervised, as a graph auto-encoder: it must reconstruct the
weighted adjacency from the embeddings. Reconstruction forces the embedding to
keep exactly the information in the graph, and message passing smooths it over
neighbourhoods.

Choices (each one is a documented reading, not the paper's exact recipe; the
numbers are on planted block dissimilarities, 20 seeds, see
``tests/test_landscape_graph.py``):

- Node features: the rows of the similarity matrix ``W + I`` (each task
  described by its similarity to every task, itself included with weight 1,
  the kernel's value at dissimilarity 0). Tasks have no other descriptors, and
  the self term makes every row distinct even when two tasks have identical
  neighbourhoods.
- GAT layer: a linear projection ``h_i -> W h_i`` per head, attention logits
  ``e_ij = LeakyReLU_0.2(a · [W h_i ‖ W h_j])`` (computed as
  ``a_dst · W h_i + a_src · W h_j``, the same thing without an (m, m, 2F)
  tensor), masked to the graph's edges (``W_ij > 0``) plus self-loops, softmax
  over each node's neighbours, then ``h'_i = Σ_j α_ij W h_j + R h_i + b``.
- Edge weights enter the attention: ``α_ij ∝ w_ij · exp(e_ij)`` (``log w_ij``
  added to the logits, self-loops weighted 1). The dense kernel graph has an
  edge between every pair, so a mask alone would let a distant task take as
  much attention as a near one; weighting by similarity keeps the kernel's
  notion of nearness while attention still re-weights within it.
- A residual (skip) projection ``R h_i`` in every layer, as in the original
  GAT's deeper model. On a dense graph attention averages over every task, so
  without it the embeddings are over-smoothed and the auto-encoder trains
  slowly: after 300 Adam steps the loss was 0.019 without it and 0.0005 with
  it on 3 blocks × 3 tasks, 0.081 and 0.0018 on 8 blocks × 5 tasks (m = 40;
  10 seeds each; with it, num_groups=8 recovered the blocks 10/10, without 9/10).
- Two layers: ``heads`` heads of ``hidden`` features concatenated, ELU, then one
  head of ``dim`` features (the embedding, no activation).
- Decoder: ``Â_ij = exp(-‖z_i - z_j‖²)``, the graph's own Gaussian kernel. A
  perfect reconstruction puts tasks at embedding distance ``D_ij / (√2 σ)``,
  so Euclidean distance in the embedding means what the dissimilarity means,
  which is what the Gaussian mixture of :mod:`tgroup.landscape.cluster`
  assumes. The inner-product decoder ``sigmoid(Z Zᵀ)`` (with MSE) was measured
  and rejected: on planted 3 × 3 graphs it stalls at predicting the mean
  weight (final MSE 0.027 = the variance of ``W``) with every task embedded
  at nearly one point, while this decoder reached an MSE of 0.0002.
- Loss: the binary cross-entropy of a graph auto-encoder with the weights as
  soft targets, reported minus its minimum (the targets' entropy), i.e. the
  mean Bernoulli KL divergence ``KL(W_ij ‖ Â_ij)`` over off-diagonal pairs
  (the diagonal of ``W`` is 0 by definition, not a similarity to learn); 0
  means a perfect reconstruction. Mean squared error was tried first and
  rejected: ``exp(-d²)`` saturates, and once Adam's first steps have pushed a
  pair far apart (Â ≈ 0 against a target of 0.1) MSE has no gradient to pull
  it back (a 4-task toy stalled at MSE 0.0067, 8 of 12 pairs at Â ≈ 0, in 5/5
  seeds); cross-entropy keeps a pull of ``2 W_ij (z_i - z_j)`` at any distance
  (the same toy: KL ≤ 2e-4 in 4/5 seeds, 1.5e-3 in the fifth).
- Optimiser: ``optax.adam``. Initialisation, every step and the final loss are
  one ``jax.jit``-compiled function with ``lax.scan`` over the steps; it is
  compiled once per (number of tasks, dim, hidden, heads, steps) and the key,
  graph and learning rate are traced, so new keys or graphs of the same size
  reuse it.
"""
from __future__ import annotations

import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import xlogy

from tgroup import one_shot
from tgroup.errors import UserError


# Floor on 1 - â inside the log (float32 resolves 1 - â down to ~1e-7).
_EPS = 1e-7


class GATLayer(nn.Module):
  """One graph attention layer over a dense weighted adjacency.

  Attributes:
    features: output features per head.
    heads: number of attention heads.
    concat: concatenate the heads (``heads * features`` outputs) or average
      them (``features`` outputs).
    edge_weighted: multiply attention by the edge weight (``α_ij ∝ w_ij
      exp(e_ij)``); False uses the graph only as a mask.
    negative_slope: slope of the LeakyReLU on the attention logits.
    residual: add a bias-free linear projection of the layer's input (a skip
      connection against over-smoothing on dense graphs).

  Examples:
    >>> layer = GATLayer(features=3, heads=2)
    >>> h, adj = jnp.ones((4, 5)), jnp.ones((4, 4)) - jnp.eye(4)
    >>> params = layer.init(jax.random.key(0), h, adj)
    >>> layer.apply(params, h, adj).shape
    (4, 6)
  """
  features: int
  heads: int = 1
  concat: bool = True
  edge_weighted: bool = True
  negative_slope: float = 0.2
  residual: bool = True

  @nn.compact
  def __call__(self, h: jax.Array, adjacency: jax.Array) -> jax.Array:
    """Maps node features ``h`` (m, f) to (m, heads*features) or (m, features)."""
    adjacency = jnp.asarray(adjacency)
    m = h.shape[0]
    wh = nn.Dense(self.heads * self.features, use_bias=False, name="project")(h)
    wh = wh.reshape(m, self.heads, self.features)
    init = nn.initializers.glorot_uniform(in_axis=-1, out_axis=-2)
    a_dst = self.param("attn_dst", init, (self.heads, self.features))
    a_src = self.param("attn_src", init, (self.heads, self.features))
    # a · [Wh_i ‖ Wh_j] splits into a target term and a source term; their
    # broadcast sum is the (target i, source j, head) logit tensor.
    logits = (jnp.einsum("ihf,hf->ih", wh, a_dst)[:, None, :]
              + jnp.einsum("jhf,hf->jh", wh, a_src)[None, :, :])
    logits = nn.leaky_relu(logits, self.negative_slope)
    weights = adjacency + jnp.eye(m, dtype=adjacency.dtype)  # self-loops, weight 1
    edge = (weights > 0)[:, :, None]
    if self.edge_weighted:
      # log of a safe value: the masked branch of `where` is still evaluated.
      logits = logits + jnp.log(jnp.where(edge, weights[:, :, None], 1.0))
    # Every row has its self-loop, so the softmax never sees an all-masked row.
    alpha = jax.nn.softmax(jnp.where(edge, logits, -jnp.inf), axis=1)
    out = jnp.einsum("ijh,jhf->ihf", alpha, wh)
    out = out.reshape(m, -1) if self.concat else out.mean(axis=1)
    if self.residual:
      out = out + nn.Dense(out.shape[-1], use_bias=False, name="skip")(h)
    return out + self.param("bias", nn.initializers.zeros, out.shape[-1:])


class GraphAttentionEncoder(nn.Module):
  """Two GAT layers: multi-head (concatenated) + ELU, then one head of ``dim``.

  Attributes:
    dim: embedding size.
    hidden: features per head in the first layer.
    heads: heads in the first layer.

  Examples:
    >>> enc = GraphAttentionEncoder(dim=2, hidden=4, heads=2)
    >>> adj = jnp.ones((3, 3)) - jnp.eye(3)
    >>> params = enc.init(jax.random.key(0), adj)
    >>> enc.apply(params, adj).shape
    (3, 2)
  """
  dim: int = 8
  hidden: int = 16
  heads: int = 4

  @nn.compact
  def __call__(self, adjacency: jax.Array) -> jax.Array:
    """Embeds each node of ``adjacency`` (m, m); its features are the rows of W + I."""
    adjacency = jnp.asarray(adjacency)
    x = adjacency + jnp.eye(adjacency.shape[0], dtype=adjacency.dtype)
    x = nn.elu(GATLayer(self.hidden, heads=self.heads, concat=True)(x, adjacency))
    return GATLayer(self.dim, heads=1, concat=False)(x, adjacency)


def decode(embeddings: jax.Array) -> jax.Array:
  """Reconstructed adjacency ``exp(-‖z_i - z_j‖²)`` (ones on the diagonal).

  Examples:
    >>> np.asarray(decode(jnp.array([[0.], [1.]])), float).round(3).tolist()
    [[1.0, 0.368], [0.368, 1.0]]
  """
  return jnp.exp(-_squared_distances(embeddings))


def _squared_distances(embeddings: jax.Array) -> jax.Array:
  """Pairwise ``‖z_i - z_j‖²`` as an (m, m) array."""
  sq = jnp.sum(jnp.square(embeddings), axis=-1)
  # The expanded form avoids an (m, m, dim) difference tensor; clip the
  # rounding error that can make it slightly negative.
  return jnp.maximum(sq[:, None] + sq[None, :] - 2 * embeddings @ embeddings.T, 0.0)


def reconstruction_loss(embeddings: jax.Array, adjacency: jax.Array) -> jax.Array:
  """Mean Bernoulli KL divergence of :func:`decode` from ``W`` over off-diagonal pairs.

  ``KL(w ‖ â) = w log(w/â) + (1-w) log((1-w)/(1-â))``: the binary cross-entropy
  of a graph auto-encoder with the weights as soft targets, minus its minimum
  (the targets' entropy), so a perfect reconstruction scores 0.

  Examples:
    >>> z = jnp.array([[0.], [1.]])  # â = exp(-1) off the diagonal
    >>> float(reconstruction_loss(z, jnp.exp(-1.) * (1 - jnp.eye(2)))) < 1e-6
    True
  """
  adjacency = jnp.asarray(adjacency)
  m = adjacency.shape[0]
  dist2 = _squared_distances(embeddings)
  # log â = -d² exactly; log(1 - â) is clamped so coincident tasks (d² = 0)
  # give a finite loss and no gradient instead of -inf.
  log_1m_recon = jnp.log(jnp.maximum(-jnp.expm1(-dist2), _EPS))
  w = adjacency
  kl = (xlogy(w, w) + w * dist2 + xlogy(1 - w, 1 - w) - (1 - w) * log_1m_recon)
  off = 1.0 - jnp.eye(m, dtype=kl.dtype)
  return jnp.sum(off * kl) / (m * (m - 1))


def _train_impl(adjacency, key, learning_rate, *, dim, hidden, heads, steps):
  """Initialises and trains the auto-encoder; returns (embeddings, final loss)."""
  model = GraphAttentionEncoder(dim=dim, hidden=hidden, heads=heads)
  params = model.init(key, adjacency)
  tx = optax.adam(learning_rate)

  def loss_fn(p):
    return reconstruction_loss(model.apply(p, adjacency), adjacency)

  def step(carry, _):
    p, opt_state = carry
    grads = jax.grad(loss_fn)(p)
    updates, opt_state = tx.update(grads, opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  z = model.apply(params, adjacency)
  return z, reconstruction_loss(z, adjacency)


# Module structure and the scan length are static; key, graph and learning rate
# are traced so a sweep over seeds or learning rates compiles once. The program
# runs once per grouping and for milliseconds, so compile time is its whole
# cost: compiled cheaply (tgroup.one_shot), 0.58-0.88 s instead of 1.4-3.1 s.
_train = one_shot.jit_once(_train_impl, static_argnames=("dim", "hidden", "heads", "steps"))


def _check_positive_int(name, value, minimum=1):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def gat_embeddings(adjacency, key: jax.Array, *, dim: int = 8, hidden: int = 16,
                   heads: int = 4, steps: int = 300,
                   learning_rate: float = 1e-2) -> tuple[np.ndarray, float]:
  """Task embeddings from a weighted task graph (GAT graph auto-encoder).

  Args:
    adjacency: ``(m, m)`` weighted adjacency from
      :func:`tgroup.landscape.graph.similarity_graph` (symmetric, zero
      diagonal, weights in [0, 1]; 0 means no edge).
    key: a JAX PRNG key; it seeds the initialisation, so a fixed key gives the
      same embeddings.
    dim: embedding size.
    hidden: features per head of the first GAT layer.
    heads: attention heads of the first layer.
    steps: Adam steps (0 returns the untrained network's embeddings and loss).
    learning_rate: Adam's learning rate.

  Returns:
    ``(embeddings, final_loss)``: float32 ``(m, dim)`` NumPy array, and the
    reconstruction loss (see :func:`reconstruction_loss`) of the returned
    embeddings as a Python float.

  Raises:
    UserError: if the adjacency is not a square matrix of finite weights in
      [0, 1], or a size argument is not a positive integer.

  Examples:
    >>> w = np.array([[0, .9, .1, .1], [.9, 0, .1, .1], [.1, .1, 0, .9], [.1, .1, .9, 0]])
    >>> z, loss = gat_embeddings(w, jax.random.key(0), dim=2, steps=100)
    >>> z.shape, loss < 1e-3
    ((4, 2), True)
  """
  try:
    w = np.array(adjacency, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserError(f"adjacency is not a numeric matrix: {e}") from None
  if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 2:
    raise UserError(f"adjacency must be a square (m, m) matrix with m >= 2, got shape {w.shape}")
  if not (np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()):
    raise UserError("adjacency weights must be finite and in [0, 1] "
                    "(build it with similarity_graph)")
  dims = {name: _check_positive_int(name, value)
          for name, value in (("dim", dim), ("hidden", hidden), ("heads", heads))}
  steps = _check_positive_int("steps", steps, minimum=0)
  if not (isinstance(learning_rate, numbers.Real) and np.isfinite(learning_rate)
          and learning_rate > 0):
    raise UserError(f"learning_rate must be a positive number, got {learning_rate!r}")
  z, loss = _train(jnp.asarray(w, jnp.float32), key, jnp.float32(learning_rate),
                   steps=steps, **dims)
  return np.asarray(z), float(loss)
