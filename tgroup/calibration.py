"""The calibrated method's predictor: a group network's validation losses from cheap signals.

A task's validation loss in a group network is predicted from what its
groupmates give it by the signals of the one collection run (lookahead gains,
their first-order expansion, TAG's affinity, gradient cosine) and the landscape
dissimilarity, each standardised over its off-diagonal entries so that their
scales do not matter:

    features(a, G) = [mean over b in G∖{a} of z_s[b, a] for each signal s] + [|G| − 1]
    target(a, G)   = (L_a(G) − L_a({a})) / |L_a({a})|     (relative change over alone)

The model is Bayesian linear regression (scikit-learn's ``BayesianRidge``,
priors fitted by evidence maximisation), for three reasons: the method trains
a handful of networks, so a model with one weight per signal is what the data
can carry; its predictive standard deviation is what the search needs to tell
a group it knows from one it guesses at (docs/methods.md, calibrated); and a
linear model in means of pair signals is the form of Standley's higher-order
approximation, which averages pairs, with weights fitted instead of fixed.
A group's predicted total is the sum of its members' predictions, its
standard deviation that of independent member errors.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

Group = tuple[int, ...]


def standardise(matrix: np.ndarray) -> np.ndarray:
  """Off-diagonal entries z-scored; the diagonal set to 0 (a constant matrix gives zeros).

  Examples:
    >>> standardise(np.array([[9.0, 1.0], [3.0, 9.0]])).tolist()
    [[0.0, -1.0], [1.0, 0.0]]
  """
  matrix = np.asarray(matrix, dtype=np.float64)
  off = ~np.eye(len(matrix), dtype=bool)
  values = matrix[off]
  spread = values.std()
  z = np.zeros_like(matrix)
  if spread > 0 and np.isfinite(spread):
    z[off] = (values - values.mean()) / spread
  return z


def membership(groups: Sequence[Group], m: int) -> np.ndarray:
  """``(len(groups), m)`` boolean: row c marks group c's tasks."""
  out = np.zeros((len(groups), m), dtype=bool)
  for c, g in enumerate(groups):
    out[c, list(g)] = True
  return out


def received_features(signals: Mapping[str, np.ndarray], groups: Sequence[Group]
                      ) -> np.ndarray:
  """``(C, m, S + 1)``: each member's mean received standardised signal, and groupmates.

  Entry ``[c, a]`` is defined for members ``a`` of group ``c`` of two or more
  tasks (zeros elsewhere). Signals are oriented like gains: ``s[b, a]`` is what
  task a receives from b, higher is better.

  Examples:
    >>> s = {"g": np.array([[0, 1, 5], [2, 0, 6], [3, 4, 0]], float)}
    >>> f = received_features(s, [(0, 1), (0, 1, 2)])
    >>> np.round(f[1, 0], 3).tolist()  # task 0 receives z[1, 0] and z[2, 0]; 2 groupmates
    [-0.586, 2.0]
  """
  names = sorted(signals)
  m = len(next(iter(signals.values())))
  member = membership(groups, m).astype(np.float64)
  mates = np.maximum(member.sum(axis=1, keepdims=True) - 1, 1)
  columns = [member @ standardise(signals[s]) / mates for s in names]  # diagonal is 0
  columns.append(np.broadcast_to(mates, member.shape))
  return np.stack(columns, axis=-1) * member[..., None]


@dataclasses.dataclass(frozen=True)
class Prediction:
  """Predicted total validation loss of each candidate group, and its standard deviation."""
  mean: np.ndarray
  std: np.ndarray


class GroupLossPredictor:
  """Fits member losses of trained groups; predicts every candidate group's total.

  Args:
    features: ``(C, m, F)`` from :func:`received_features` for the candidates.
    groups: the candidates (task-index tuples of two or more tasks), in row order.
    alone: ``(m,)`` each task's validation loss trained alone.

  Examples:
    A known answer: every member's loss in a group is alone × (1 − 0.1 × its
    mean received signal), so the fit recovers it and predicts an untrained
    group exactly.

    >>> rng = np.random.default_rng(0)
    >>> s = {"g": rng.normal(size=(4, 4))}
    >>> groups = [(0, 1), (0, 2), (1, 2), (2, 3), (0, 3), (0, 1, 2, 3)]
    >>> f = received_features(s, groups)
    >>> alone = np.array([1.0, 2.0, 0.5, 1.5])
    >>> truth = {g: alone * (1 - 0.1 * f[c, :, 0]) for c, g in enumerate(groups)}
    >>> p = GroupLossPredictor(f, groups, alone).fit({g: truth[g] for g in groups[:5]})
    >>> total = truth[(0, 1, 2, 3)].sum()
    >>> bool(abs(p.predict().mean[5] - total) < 1e-3 * total)
    True
  """

  def __init__(self, features: np.ndarray, groups: Sequence[Group], alone: np.ndarray):
    self.features, self.groups = features, [tuple(g) for g in groups]
    self.alone = np.asarray(alone, dtype=np.float64)
    # Relative change, or the plain difference for a task whose loss alone is 0.
    self.scale = np.where(np.abs(self.alone) > 1e-12, np.abs(self.alone), 1.0)
    self.row = {g: c for c, g in enumerate(self.groups)}
    self.model = None

  def fit(self, measured: Mapping[Group, np.ndarray]) -> "GroupLossPredictor":
    """Fits on the members of measured groups (``group -> (m,) validation losses``)."""
    from sklearn.linear_model import BayesianRidge  # pylint: disable=g-import-not-at-top
    x, y = [], []
    for g, losses in measured.items():
      for a in g:
        x.append(self.features[self.row[g], a])
        y.append((float(losses[a]) - self.alone[a]) / self.scale[a])
    if len(y) < 2:
      raise ValueError(f"the predictor needs at least two measured members, got {len(y)}")
    self.model = BayesianRidge().fit(np.array(x), np.array(y))
    return self

  def predict(self) -> Prediction:
    """Every candidate's predicted total validation loss and its standard deviation."""
    c, m, f = self.features.shape
    member = membership(self.groups, m)
    mean, std = self.model.predict(self.features.reshape(c * m, f), return_std=True)
    mean, std = mean.reshape(c, m), std.reshape(c, m)
    total = ((self.alone + self.scale * mean) * member).sum(axis=1)
    spread = np.sqrt((((self.scale * std) ** 2) * member).sum(axis=1))
    return Prediction(total, spread)

  def coefficients(self, names: Sequence[str]) -> dict:
    """The fitted weights by feature name, and the intercept (for report.json)."""
    return {**{n: float(w) for n, w in zip(names, self.model.coef_)},
            "intercept": float(self.model.intercept_)}
