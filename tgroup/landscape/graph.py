"""The task graph: a Gaussian-kernel similarity graph over a task dissimilarity.

The landscape measure (docs/design.md §2) gives a dissimilarity ``D[i, j]``: the mean
over shared samples of the L1 distance between the one-step optima of tasks i
and j (lower = they train well together). Distances are not affinities: a
graph network needs edge weights that are large for related tasks and fall to
zero for unrelated ones, so we pass ``D`` through a Gaussian kernel.

The kernel width is the median of the off-diagonal dissimilarities (the
"median heuristic"): it makes the graph invariant to the overall scale of
``D`` (which depends on the learning rate and the parameter count of the
model), and puts half of the pairs above similarity ``exp(-1/2)`` and half
below, so the weights use the kernel's sensitive range instead of collapsing
to all-ones or all-zeros.

Pure NumPy: no JAX, so the graph can be built and inspected without it.
"""
from __future__ import annotations

import numbers

import numpy as np

from tgroup.errors import UserError

# Relative tolerance for symmetry and for the zero diagonal: dissimilarities
# are means of float32 sums, so exact symmetry is not guaranteed, but anything
# beyond rounding means the matrix is not a dissimilarity (or is transposed
# from something else).
_RTOL = 1e-8


def check_dissimilarity(dissimilarity) -> np.ndarray:
  """Validates a task dissimilarity and returns it as exactly symmetric float64.

  Args:
    dissimilarity: array-like ``(m, m)``, ``m >= 2``: symmetric (to 1e-8
      relative to its largest entry), finite, non-negative, zero diagonal.

  Returns:
    The matrix as float64, symmetrised as ``(D + D.T) / 2`` and with the
    diagonal set to exactly zero (both within rounding of the input).

  Raises:
    UserError: with a one-line message naming the first problem found.

  Examples:
    >>> check_dissimilarity([[0, 1], [1, 0]]).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    >>> check_dissimilarity([[0, 1], [2, 0]])
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: dissimilarity is not symmetric: D[0][1] = 1 but D[1][0] = 2
  """
  try:
    d = np.array(dissimilarity, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserError(f"dissimilarity is not a numeric matrix: {e}") from None
  if d.ndim != 2 or d.shape[0] != d.shape[1]:
    raise UserError(f"dissimilarity must be a square (m, m) matrix, got shape {d.shape}")
  m = d.shape[0]
  if m < 2:
    raise UserError(f"dissimilarity needs at least 2 tasks, got {m}")
  bad = np.argwhere(~np.isfinite(d))
  if len(bad):
    i, j = bad[0]
    raise UserError(f"dissimilarity D[{i}][{j}] is not finite ({d[i, j]})")
  bad = np.argwhere(d < 0)
  if len(bad):
    i, j = bad[0]
    raise UserError(f"dissimilarity D[{i}][{j}] = {d[i, j]:g} is negative")
  tol = _RTOL * max(float(d.max()), np.finfo(np.float64).tiny)
  bad = np.argwhere(np.abs(d - d.T) > tol)
  if len(bad):
    i, j = bad[0]
    raise UserError(f"dissimilarity is not symmetric: D[{i}][{j}] = {d[i, j]:g} "
                    f"but D[{j}][{i}] = {d[j, i]:g}")
  bad = np.flatnonzero(np.diag(d) > tol)
  if len(bad):
    i = bad[0]
    raise UserError(f"dissimilarity must have a zero diagonal: D[{i}][{i}] = {d[i, i]:g}")
  d = (d + d.T) / 2
  np.fill_diagonal(d, 0.0)
  return d


def kernel_width(dissimilarity: np.ndarray) -> float:
  """The Gaussian kernel width σ: the median off-diagonal dissimilarity.

  When more than half of the pairs have dissimilarity 0 the median is 0; σ then
  falls back to the median of the positive off-diagonal entries (so tied tasks
  get similarity 1 and the others still get graded weights), and to 1 when
  every entry is 0 (any width gives all-ones then).

  Args:
    dissimilarity: a checked ``(m, m)`` dissimilarity (see
      :func:`check_dissimilarity`).

  Returns:
    σ > 0 as a Python float.

  Examples:
    >>> kernel_width(np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]]))
    2.0
    >>> kernel_width(np.zeros((3, 3)))
    1.0
  """
  d = np.asarray(dissimilarity, dtype=np.float64)
  off = d[~np.eye(d.shape[0], dtype=bool)]
  sigma = float(np.median(off))
  if sigma > 0:
    return sigma
  positive = off[off > 0]
  return float(np.median(positive)) if positive.size else 1.0


def knn_mask(dissimilarity: np.ndarray, knn: int) -> np.ndarray:
  """Symmetric k-nearest-neighbour edge set of a dissimilarity.

  Each node's ``knn`` nearest other nodes are its neighbours (ties broken by
  the lower task index, so the set is deterministic); an edge ``(i, j)`` is
  kept when either endpoint has the other among its neighbours. "Either"
  (the union) rather than "both" (mutual kNN) keeps every node connected to at
  least ``knn`` others, so no task is isolated from the graph network.

  Args:
    dissimilarity: a checked ``(m, m)`` dissimilarity.
    knn: the number of neighbours per node, ``1 <= knn``; values ``>= m - 1``
      keep every edge.

  Returns:
    Boolean ``(m, m)`` symmetric mask with a False diagonal.

  Examples:
    >>> d = np.array([[0, 1, 5, 6], [1, 0, 4, 7], [5, 4, 0, 2], [6, 7, 2, 0]])
    >>> knn_mask(d, 1).astype(int).tolist()
    [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
  """
  d = np.asarray(dissimilarity, dtype=np.float64)
  m = d.shape[0]
  k = min(int(knn), m - 1)
  # The diagonal is the smallest entry of each row; push it last so a node is
  # never its own neighbour. A stable sort breaks ties by task index.
  ranked = np.argsort(np.where(np.eye(m, dtype=bool), np.inf, d), axis=1, kind="stable")
  mask = np.zeros((m, m), dtype=bool)
  np.put_along_axis(mask, ranked[:, :k], True, axis=1)
  return mask | mask.T


def similarity_graph(dissimilarity, knn: int | None = None) -> np.ndarray:
  """Weighted task graph ``W = exp(-D² / (2σ²))`` with σ the median dissimilarity.

  Args:
    dissimilarity: array-like ``(m, m)``: symmetric, finite, non-negative, zero
      diagonal, ``m >= 2`` (lower = tasks train well together).
    knn: optional sparsification: keep only the edges of the symmetric
      k-nearest-neighbour graph (an edge survives when either endpoint has the
      other among its ``knn`` nearest tasks, see :func:`knn_mask`); other
      weights become 0. ``None`` (the default) keeps the dense graph.

  Returns:
    float64 ``(m, m)``: symmetric, zero diagonal, off-diagonal weights in
    (0, 1] (1 for dissimilarity 0) except for edges removed by ``knn`` — and
    pairs more than ~38σ apart, whose weight underflows to 0 (no edge).

  Raises:
    UserError: if the dissimilarity is invalid (see
      :func:`check_dissimilarity`) or ``knn`` is not a positive integer.

  Examples:
    >>> d = np.array([[0., 1., 2.], [1., 0., 2.], [2., 2., 0.]])
    >>> w = similarity_graph(d)
    >>> np.round(w, 3).tolist()
    [[0.0, 0.882, 0.607], [0.882, 0.0, 0.607], [0.607, 0.607, 0.0]]
    >>> (similarity_graph(d, knn=1) > 0).astype(int).tolist()
    [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    >>> similarity_graph(np.zeros((2, 2))).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
  """
  d = check_dissimilarity(dissimilarity)
  if knn is not None and (isinstance(knn, bool) or not isinstance(knn, numbers.Integral)
                          or knn < 1):
    raise UserError(f"knn must be a positive integer or None, got {knn!r}")
  sigma = kernel_width(d)
  w = np.exp(-np.square(d / sigma) / 2)
  np.fill_diagonal(w, 0.0)
  if knn is not None:
    w = np.where(knn_mask(d, knn), w, 0.0)
  return w
