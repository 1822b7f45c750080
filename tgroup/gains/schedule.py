"""Which tasks each collected step draws when every pair must be collected often enough.

With many tasks a collection step draws only s of the m tasks (``sample_tasks``):
its lookaheads give the gains between the s(s−1)/2 drawn pairs. Drawn at random,
pairs are reached unevenly and some late; a run that must give every pair at
least r collected steps needs a plan. :func:`pair_cover` lays one out once, on
the host: a cycle of s-task draws ("a round") in which every pair of tasks is
drawn together at least once, found greedily (each draw takes the tasks that
cover the most pairs not yet covered in this round). Cycling it, the step
collected for the n-th time draws row ``n mod L`` of the round; after r whole
rounds every pair has at least r counts, so a run's reach is known before it
starts (:func:`steps_for_pair_count`).

The lower bound on a round's length is Schönheim's: ⌈m/s · ⌈(m−1)/(s−1)⌉⌉ draws;
the greedy round is a little longer (measured in the tests).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from tgroup.errors import UserError


@functools.lru_cache(maxsize=16)
def pair_cover(num_tasks: int, sample_tasks: int, seed: int = 0) -> np.ndarray:
  """One round of draws covering every pair of tasks: ``(L, s)`` sorted task indices.

  Deterministic for a seed (the seed only breaks ties). Tasks are balanced: when
  the draws that remain need fewer than s tasks, the rest of the draw goes to
  the tasks drawn least so far. Cached, read-only: a run's checks and its
  collection step ask for the same round (1.3 s to lay out for 500 tasks in 20s).

  Examples:
    >>> cover = pair_cover(6, 3)
    >>> cover.shape[1], covers_every_pair(cover, 6)
    (3, True)
    >>> pair_cover(4, 4).tolist()   # s = m: one draw holds every pair
    [[0, 1, 2, 3]]
  """
  m, s = num_tasks, sample_tasks
  if not 2 <= s <= m:
    raise UserError(f"a pair cover needs 2 <= sample_tasks <= {m} tasks, got {s}")
  rng = np.random.default_rng(seed)
  # Small random tie-breaks, far below one pair's weight, so choices are unbiased
  # but never change which option covers more pairs.
  jitter = lambda n: rng.random(n) * 1e-3
  uncovered = ~np.eye(m, dtype=bool)
  drawn = np.zeros(m)
  rows = []
  while uncovered.any():
    degree = uncovered.sum(axis=1)
    chosen = [int(np.argmax(degree - 1e-6 * drawn + jitter(m)))]
    member = np.zeros(m, bool)
    member[chosen[0]] = True
    for _ in range(s - 1):
      # Uncovered pairs a task would add, then (to balance) how rarely it was drawn.
      new = uncovered[:, member].sum(axis=1).astype(float)
      score = np.where(member, -np.inf, new - 1e-6 * drawn + jitter(m))
      k = int(np.argmax(score))
      member[k] = True
      chosen.append(k)
    idx = np.flatnonzero(member)
    uncovered[np.ix_(idx, idx)] = False
    drawn[idx] += 1
    rows.append(idx)
  cover = np.array(rows, dtype=np.int32)
  cover.flags.writeable = False
  return cover


def covers_every_pair(draws: np.ndarray, num_tasks: int) -> bool:
  """Whether every pair of distinct tasks shares at least one row of ``draws``."""
  return bool((pair_counts(draws, num_tasks) + np.eye(num_tasks, dtype=int) > 0).all())


def pair_counts(draws: np.ndarray, num_tasks: int) -> np.ndarray:
  """``(m, m)`` how many rows of ``draws`` hold both tasks (diagonal 0)."""
  member = np.zeros((len(draws), num_tasks), np.int64)
  member[np.arange(len(draws))[:, None], draws] = 1
  counts = member.T @ member
  np.fill_diagonal(counts, 0)
  return counts


def schonheim_bound(num_tasks: int, sample_tasks: int) -> int:
  """The fewest draws of s tasks that can hold every pair of m tasks (Schönheim).

  Examples:
    >>> schonheim_bound(100, 10), schonheim_bound(9, 3)
    (110, 12)
  """
  m, s = num_tasks, sample_tasks
  return math.ceil(m / s * math.ceil((m - 1) / (s - 1)))


def steps_for_pair_count(round_length: int, min_pair_count: int, collect_every: int = 1) -> int:
  """Training steps a run needs so every pair reaches ``min_pair_count`` collected steps.

  Steps 0, k, 2k, ... are collected (k = ``collect_every``); r whole rounds of
  L draws are r·L collected steps, the last at step (r·L − 1)·k.

  Examples:
    >>> steps_for_pair_count(12, 2), steps_for_pair_count(12, 2, collect_every=10)
    (24, 231)
  """
  return (round_length * min_pair_count - 1) * collect_every + 1
