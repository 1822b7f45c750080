"""Multi-task models: one shared trunk, one head per task.

Heads are one module lifted with ``nn.vmap`` so their parameters are stacked on a
leading task axis: every head runs in one batched op, never a Python loop over
tasks, and a head's parameters are ``params["heads"][...][t]``. Parameters are
``{"trunk": ..., "heads": ...}``; the lookahead measures of TAG step only the trunk.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tgroup.errors import UserError


# Trunk nonlinearities by name: a string (not a function) keeps the module hashable and its
# repr readable, and a factory can record it as one of its arguments.
ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class MLPTrunk(nn.Module):
  """Dense layers, each followed by ``activation`` ("relu" or "tanh").

  Examples:
    >>> x = jnp.ones((2, 3))
    >>> relu = MLPTrunk((4,))
    >>> params = relu.init(jax.random.key(0), x)["params"]
    >>> sorted(params)  # the same parameters whatever the activation
    ['Dense_0']
    >>> bool((MLPTrunk((4,), activation="tanh").apply({"params": params}, x) >= -1).all())
    True
  """
  widths: Sequence[int] = (32, 32)
  param_dtype: Any = jnp.float32
  activation: str = "relu"

  @nn.compact
  def __call__(self, x):
    if self.activation not in ACTIVATIONS:
      raise UserError(f"unknown trunk activation {self.activation!r}; valid: "
                      f"{', '.join(ACTIVATIONS)}")
    act = ACTIVATIONS[self.activation]
    x = x.reshape(x.shape[0], -1)
    for width in self.widths:
      x = act(nn.Dense(width, param_dtype=self.param_dtype)(x))
    return x


class DenseHead(nn.Module):
  """A linear read-out of the trunk's features."""
  features: int = 1
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.features, param_dtype=self.param_dtype)(h)


class MultiTaskModel(nn.Module):
  """``trunk`` shared by all tasks, ``num_tasks`` copies of ``head``.

  Returns predictions of shape ``(num_tasks, batch, *head_output)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> model = MultiTaskModel(MLPTrunk((8,)), DenseHead(1), num_tasks=3)
    >>> params = model.init(jax.random.key(0), jnp.zeros((2, 5)))["params"]
    >>> sorted(params), params["heads"]["Dense_0"]["kernel"].shape
    (['heads', 'trunk'], (3, 8, 1))
    >>> model.apply({"params": params}, jnp.zeros((2, 5))).shape
    (3, 2, 1)
  """
  trunk: nn.Module
  head: nn.Module
  num_tasks: int

  @nn.compact
  def __call__(self, x):
    features = self.trunk(x)
    head_fields = {f.name: getattr(self.head, f.name)
                   for f in dataclasses.fields(self.head)
                   if f.init and f.name not in ("parent", "name")}
    # Collections other than params get a task axis too, so values a head sows or
    # perturbs (tgroup.landscape reads both) stay per head.
    heads = nn.vmap(type(self.head),
                    variable_axes={"params": 0, "intermediates": 0, "perturbations": 0},
                    split_rngs={"params": True}, in_axes=None, out_axes=0,
                    axis_size=self.num_tasks)(**head_fields, name="heads")
    return heads(features)


def trunk_mask(params) -> dict:
  """A pytree of Python bools: True for shared (trunk) leaves."""
  return {key: jax.tree.map(lambda _: key == "trunk", sub) for key, sub in params.items()}
