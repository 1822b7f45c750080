"""One neural solver for several problems: per-task embedding and decoder, one shared encoder.

The architecture follows the attention model (Kool et al., 2019) as POMO
(Kwon et al., 2020) trains it, with one input embedding and one decoder per task
around a shared encoder (the multi-task layout of the routing literature):

- embedding (per task): a linear map of each node's features (coordinates,
  and the demand, prize, depot flag or weight/value its problem has);
- encoder (shared, ``params["trunk"]``): ``layers`` blocks of multi-head
  self-attention and a ReLU feed-forward layer, each with a residual connection
  and LayerNorm (not the batch/instance norm of the originals: the library's
  lookahead steps and per-sample gradients need a model without mutable state);
- decoder (per task): the query is a linear map of [mean node embedding, the
  last node's embedding, one scalar of remaining budget]; one multi-head
  attention glimpse over the feasible nodes, then a single-head compatibility
  clipped by ``clip · tanh`` gives the logits of the next node.

Rollouts run under ``lax.scan`` (one decision per iteration). The model's
inputs say, per instance, whether to sample (Gumbel-max with the instance's
key: exact sampling from the policy) or to decode greedily, so training
(REINFORCE) and evaluation (greedy) are one pure function of the inputs.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tgroup.benchmarks.cop import env as env_lib
from tgroup.benchmarks.cop.instances import Task

_MASKED = -1e9   # logit of an infeasible action (finite: no inf − inf in the softmax)


class EncoderLayer(nn.Module):
  dim: int
  heads: int
  ff: int

  @nn.compact
  def __call__(self, h):
    attended = nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.dim)(h)
    h = nn.LayerNorm()(h + attended)
    hidden = nn.Dense(self.dim)(nn.relu(nn.Dense(self.ff)(h)))
    return nn.LayerNorm()(h + hidden)


class Encoder(nn.Module):
  """The shared trunk: ``(B, N, dim)`` node embeddings in, the same shape out."""
  dim: int
  heads: int
  ff: int
  layers: int

  @nn.compact
  def __call__(self, h):
    for i in range(self.layers):
      h = EncoderLayer(self.dim, self.heads, self.ff, name=f"layer_{i}")(h)
    return h


class Decoder(nn.Module):
  """One task's decoder: rolls out ``starts`` solutions per instance.

  Returns ``(log-probability of each solution, its objective)``, both
  ``(B, starts)``; the forced first action contributes no log-probability.
  """
  task: Task
  dim: int
  heads: int
  starts: int
  clip: float = 10.0

  @nn.compact
  def __call__(self, h, inst, keys, sample):
    env = env_lib.ENVS[self.task.problem]
    b, _, d = h.shape
    # Projections of the nodes, computed once per rollout.
    glimpse_k = nn.Dense(d, use_bias=False, name="glimpse_key")(h)
    glimpse_v = nn.Dense(d, use_bias=False, name="glimpse_value")(h)
    logit_k = nn.Dense(d, use_bias=False, name="logit_key")(h)
    graph = h.mean(1)                                                     # (B, d)
    # Used inside lax.scan, so they are plain parameters rather than modules.
    w_query = self.param("query", nn.initializers.lecun_normal(), (2 * d + 1, d))
    w_out = self.param("glimpse_out", nn.initializers.lecun_normal(), (d, d))
    hd = d // self.heads
    split = lambda x: x.reshape(*x.shape[:-1], self.heads, hd)

    def logits_of(state):
      last, scalar = env.context(inst, state)
      ctx = jnp.concatenate([jnp.broadcast_to(graph[:, None], (b, self.starts, d)),
                             env_lib.gather(h, last), scalar[..., None]], -1)   # (B, P, 2d+1)
      q = split(ctx @ w_query)                                            # (B, P, H, hd)
      feasible = env.feasible(inst, state)                                # (B, P, N)
      score = jnp.einsum("bphk,bnhk->bphn", q, split(glimpse_k)) / jnp.sqrt(hd)
      score = jnp.where(feasible[:, :, None], score, _MASKED)
      glimpse = jnp.einsum("bphn,bnhk->bphk", jax.nn.softmax(score, -1), split(glimpse_v))
      g = glimpse.reshape(b, self.starts, d) @ w_out
      logits = self.clip * jnp.tanh(jnp.einsum("bpd,bnd->bpn", g, logit_k) / jnp.sqrt(d))
      return logits, feasible

    logp, objective, _ = rollout(self.task, inst, self.starts, logits_of, keys, sample)
    return logp, objective


def rollout(task: Task, inst, starts: int, logits_of, keys, sample):
  """Solves every instance from ``starts`` forced first nodes, one decision per scan step.

  Args:
    task: the problem and size.
    inst: the batch of instances (``B`` of them).
    starts: parallel solutions per instance (POMO's starts).
    logits_of: ``state -> (logits (B, starts, N), feasible (B, starts, N))``.
    keys: ``(B,)`` PRNG keys of the sampling noise.
    sample: ``(B,)``: 1 samples (Gumbel-max), 0 decodes greedily.

  Returns:
    ``(log-probability (B, starts), objective (B, starts), actions (B, starts, T))``,
    the actions including the forced first one; the first contributes no
    log-probability.
  """
  env = env_lib.ENVS[task.problem]
  state = env.init(inst, starts)
  first = env.start(inst, state)
  b = first.shape[0]
  state = env.step(inst, state, first, jnp.ones((b, starts), bool))

  def decide(carry, i):
    state, logp = carry
    logits, feasible = logits_of(state)
    n = feasible.shape[-1]
    active = feasible.any(-1)
    # Nothing feasible (a full knapsack): a no-op on node 0, with no probability.
    feasible = jnp.where(active[..., None], feasible, jax.nn.one_hot(0, n, dtype=bool))
    logits = jax.nn.log_softmax(jnp.where(feasible, logits, _MASKED), -1)
    noise = jax.vmap(lambda k: jax.random.gumbel(jax.random.fold_in(k, i), (starts, n)))(keys)
    action = jnp.argmax(logits + sample[:, None, None] * noise, -1)
    chosen = jnp.take_along_axis(logits, action[..., None], -1)[..., 0]
    state = env.step(inst, state, action, active)
    return (state, logp + chosen * active), jnp.where(active, action, -1)

  (state, logp), actions = jax.lax.scan(decide, (state, jnp.zeros((b, starts))),
                                        jnp.arange(env.steps(task.size)))
  actions = jnp.concatenate([first[..., None], jnp.moveaxis(actions, 0, -1)], -1)
  return logp, env.objective(inst, state), actions


class RoutingSolver(nn.Module):
  """The multi-task solver: ``inputs`` -> ``{"logp", "objective"}`` ``(m, B, starts)``, "sample".

  ``inputs`` holds one batch of instances per task under the task's name, the
  per-instance PRNG key data ``"key"`` ``(B, 2)`` uint32 and ``"sample"``
  ``(B,)``: 1 to sample, 0 to decode greedily.
  """
  tasks: Sequence[Task]
  dim: int = 64
  heads: int = 4
  ff: int = 128
  layers: int = 2
  starts: int = 8

  @nn.compact
  def __call__(self, inputs: dict[str, Any]):
    trunk = Encoder(self.dim, self.heads, self.ff, self.layers, name="trunk")
    keys = jax.random.wrap_key_data(jnp.asarray(inputs["key"], jnp.uint32))
    sample = jnp.asarray(inputs["sample"], jnp.float32)
    logps, objectives = [], []
    # Tasks differ in node count and dynamics, so each is its own trace (a handful).
    for t, task in enumerate(self.tasks):
      inst = inputs[task.name]
      h = nn.Dense(self.dim, name=f"embed_{task.name}")(env_lib.ENVS[task.problem].features(inst))
      task_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
      logp, objective = Decoder(task, self.dim, self.heads, self.starts,
                                name=f"decoder_{task.name}")(trunk(h), inst, task_keys, sample)
      logps.append(logp)
      objectives.append(objective)
    # The sampling flag travels with the predictions: the loss differs (see benchmark).
    return {"logp": jnp.stack(logps), "objective": jnp.stack(objectives), "sample": sample}
