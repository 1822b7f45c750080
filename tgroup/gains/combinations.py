"""Which lookaheads a collection step takes, as static arrays.

A combination is a multiset of tasks given as a weight row over the s tasks drawn
this step: its gradient is ``weights @ per_task_grads``. Rows are laid out once
in NumPy (they depend only on s and the measures), so the jitted step sees
constants and never loops over tasks or combinations in Python.
"""
from __future__ import annotations

import dataclasses

import numpy as np

MEASURES = ("principled", "principled_marginal", "tag", "cosine", "first_order")


@dataclasses.dataclass(frozen=True)
class Layout:
  """Rows of the two lookahead batches for ``s`` drawn tasks.

  Attributes:
    full_weights: ``(k, s)`` rows stepped with the whole model's update: pairs
      ``e_a + e_b`` (a < b), then self-pairs ``2 e_b``, then singles ``e_b``,
      each block present only if a requested measure needs it.
    shared_weights: ``(s, s)`` singles stepped on the shared trunk only (TAG),
      or ``(0, s)``.
    pair_or_self: ``(s, s)`` row in ``full_weights`` of the pair {a, b} (a ≠ b)
      or of the self-pair {b, b} on the diagonal; -1 if absent.
    single: ``(s,)`` row of the single {b}; -1 if absent.
  """
  s: int
  full_weights: np.ndarray
  shared_weights: np.ndarray
  pair_or_self: np.ndarray
  single: np.ndarray

  @property
  def num_lookaheads(self) -> int:
    return len(self.full_weights) + len(self.shared_weights)


def layout(s: int, measures: tuple[str, ...]) -> Layout:
  """Static combination rows for ``s`` tasks and the requested measures.

  Examples:
    >>> lay = layout(3, ("principled",))
    >>> lay.full_weights.shape, lay.num_lookaheads   # 3 pairs + 3 self-pairs
    ((6, 3), 6)
    >>> lay.full_weights[lay.pair_or_self[0, 2]], lay.full_weights[lay.pair_or_self[1, 1]]
    (array([1., 0., 1.], dtype=float32), array([0., 2., 0.], dtype=float32))
    >>> layout(3, ("principled_marginal", "tag")).num_lookaheads  # pairs, singles, TAG
    9
  """
  unknown = set(measures) - set(MEASURES)
  if unknown:
    raise ValueError(f"unknown measure(s) {sorted(unknown)}; known: {list(MEASURES)}")
  eye = np.eye(s, dtype=np.float32)
  a, b = np.triu_indices(s, 1)
  blocks, pair_or_self, single = [], -np.ones((s, s), np.int64), -np.ones(s, np.int64)
  rows = 0
  if "principled" in measures or "principled_marginal" in measures:
    blocks.append(eye[a] + eye[b])
    pair_or_self[a, b] = pair_or_self[b, a] = np.arange(len(a))
    rows += len(a)
  if "principled" in measures:
    blocks.append(2 * eye)
    pair_or_self[np.arange(s), np.arange(s)] = rows + np.arange(s)
    rows += s
  if "principled_marginal" in measures:
    blocks.append(eye)
    single[:] = rows + np.arange(s)
    rows += s
  full = np.concatenate(blocks) if blocks else np.zeros((0, s), np.float32)
  shared = eye if "tag" in measures else np.zeros((0, s), np.float32)
  return Layout(s, full, shared, pair_or_self, single)
