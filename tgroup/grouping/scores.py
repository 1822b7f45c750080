"""How well each task does in a candidate group, by grouping objective.

``gains[i, j]`` is what task j receives from task i (source i, target j). The
score of a group is the sum of its members' scores, so per-task scores are the
one quantity both the partition and the cover model need.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tgroup.errors import UserError

# principled: (1/|S|) sum_{i in S} G[i, a], the self-pair G[a, a] included.
# marginal:   (1/|S|) sum_{i in S, i != a} G[i, a]; 0 for a singleton.
# tag:        mean_{b in S, b != a} G[b, a]; a singleton has no score.
# hoa:        as tag, but a singleton scores G[a, a]: Standley's higher-order
#             approximation, with G[b, a] = a's (negated) loss when trained with b
#             alone and G[a, a] = a's when trained alone (see hoa_gains).
OBJECTIVES = ("principled", "marginal", "tag", "hoa")


def check_objective(objective: str) -> str:
  """Returns `objective` or raises UserError listing the known ones.

  Examples:
    >>> check_objective("cosine")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: unknown grouping objective 'cosine'; known: \
principled, marginal, tag, hoa
  """
  if objective not in OBJECTIVES:
    raise UserError(f"unknown grouping objective {objective!r}; known: "
                    f"{', '.join(OBJECTIVES)}")
  return objective


def min_group_size(objective: str) -> int:
  """The smallest group an objective can score (TAG excludes singletons).

  Examples:
    >>> min_group_size("tag"), min_group_size("marginal")
    (2, 1)
  """
  return 2 if check_objective(objective) == "tag" else 1


def check_gains(gains, tasks: Sequence[str]) -> np.ndarray:
  """Gains as a float64 (m, m) array, or a UserError naming what is wrong.

  Examples:
    >>> check_gains([[1.0, float("nan")], [0.0, 1.0]], ["a", "b"])
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: gains[0][1] (source 'a', target 'b') is nan; \
every gain must be finite
  """
  m = len(tasks)
  try:
    g = np.asarray(gains, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserError(f"gains must be an {m}x{m} array of numbers ({e})") from None
  if g.shape != (m, m):
    raise UserError(f"gains must be {m}x{m} for {m} tasks, got shape "
                    f"{g.shape}")
  bad = np.argwhere(~np.isfinite(g))
  if len(bad):
    i, j = bad[0]
    raise UserError(f"gains[{i}][{j}] (source {tasks[i]!r}, target "
                    f"{tasks[j]!r}) is {g[i, j]}; every gain must be finite")
  return g


def task_scores(membership: np.ndarray, gains: np.ndarray,
                objective: str) -> np.ndarray:
  """Score of every task in every candidate group.

  Args:
    membership: bool array (n, m); row c is candidate group c.
    gains: float array (m, m), ``gains[i, j]`` received by j from i.
    objective: one of :data:`OBJECTIVES`.

  Returns:
    float array (n, m): ``[c, t]`` is task t's score in group c, NaN where t is
    not in c (and, for "tag", everywhere in a singleton row).

  Examples:
    >>> import numpy as np
    >>> g = np.array([[2.0, 1.0], [-1.0, 4.0]])
    >>> both = np.array([[True, True]])
    >>> task_scores(both, g, "principled")
    array([[0.5, 2.5]])
    >>> task_scores(both, g, "marginal")
    array([[-0.5,  0.5]])
    >>> task_scores(both, g, "tag")
    array([[-1.,  1.]])
  """
  check_objective(objective)
  member = np.asarray(membership, dtype=bool)
  size = member.sum(axis=1, keepdims=True).astype(np.float64)
  g = np.array(gains, dtype=np.float64)
  diagonal = np.diag(g).copy()
  if objective != "principled":
    # Summing a zero-diagonal matrix rather than subtracting the diagonal
    # afterwards keeps singleton "marginal" scores exactly 0.
    np.fill_diagonal(g, 0.0)
  received = member.astype(np.float64) @ g
  denom = size - 1.0 if objective in ("tag", "hoa") else size
  with np.errstate(divide="ignore", invalid="ignore"):
    scores = received / denom
  singleton = size[:, 0] < 2
  if objective == "tag":
    scores[singleton] = np.nan
  elif objective == "hoa":
    scores[singleton] = np.where(member[singleton], diagonal[None, :], np.nan)
  scores[~member] = np.nan
  return scores


def hoa_gains(table, lower_is_better: bool = True) -> np.ndarray:
  """Gains for the "hoa" objective from a pairwise table.

  ``table[a][b]`` is task a's validation metric when trained with b alone, and
  ``table[a][a]`` alone (the orientation of TAG's released HOA tables). The gains
  are oriented like every gains matrix (``gains[b][a]``: what a gets with b) and
  negated when lower is better, since grouping maximises.

  Examples:
    >>> hoa_gains([[0.5, 0.4], [0.9, 0.7]])
    array([[-0.5, -0.9],
           [-0.4, -0.7]])
  """
  t = np.asarray(table, dtype=np.float64).T
  return -t if lower_is_better else t
