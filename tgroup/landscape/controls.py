"""What the landscape dissimilarity captures: a label statistic, checked by controls.

At a random θ_0 whose task heads are copies of one head (the default), two
tasks' per-sample gradients differ only through their labels: the head outputs
are the same for every task, so ``∇ℓ_i(x) − ∇ℓ_j(x)`` is zero wherever tasks i
and j have the same label on x. The dissimilarity is then, to a good
approximation, ``D_ij ≈ h_i + h_j + c · disagree_ij``: a per-task offset and a
multiple of how often (or, for real-valued labels, how far) the two tasks'
labels disagree on the samples read. Two controls test this on a TaskSet:

- :func:`additive_fit`: the R² of that three-term least-squares fit over the
  task pairs (next to the R² of the offsets alone, ``h_i + h_j``);
- :func:`noise_inputs`: the same TaskSet with its training inputs replaced by
  Gaussian noise and its labels kept; if the dissimilarity (and the groups)
  barely change, the measure did not read the inputs.

``python -m launch.landscape_controls`` runs both on the benchmarks
(docs/methods.md, docs/results.md).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from tgroup import data as data_lib
from tgroup.errors import UserError
from tgroup.tasks import TaskSet


def training_labels(taskset: TaskSet, num_samples: int) -> np.ndarray:
  """The first ``num_samples`` training labels (those the landscape pass reads), ``(n, m)``."""
  rows, seen = [], 0
  for batch in taskset.train.eval_batches(min(num_samples, 256)):
    keep = np.asarray(batch.weights) > 0
    rows.append(np.asarray(batch.labels)[keep].reshape(int(keep.sum()), -1,
                                                        taskset.num_tasks))
    seen += int(keep.sum())
    if seen >= num_samples:
      break
  return np.concatenate(rows)[:num_samples]


def label_disagreement(labels: np.ndarray) -> np.ndarray:
  """``(m, m)`` disagreement between tasks' labels on the same samples.

  Integer-valued labels (classes): the fraction of samples (and label positions)
  where the two tasks' labels differ. Real-valued labels: the mean absolute
  difference of the tasks' standardised labels.

  Args:
    labels: ``(n, ..., m)``, task axis last.

  Examples:
    >>> y = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]])
    >>> label_disagreement(y).tolist()
    [[0.0, 0.25, 0.5], [0.25, 0.0, 0.75], [0.5, 0.75, 0.0]]
  """
  y = np.asarray(labels, np.float64)
  y = y.reshape(-1, y.shape[-1])
  if not np.allclose(y, np.round(y)):
    y = (y - y.mean(0)) / np.maximum(y.std(0), 1e-12)
    return np.abs(y[:, :, None] - y[:, None, :]).mean(0)
  return (y[:, :, None] != y[:, None, :]).mean(0)


class Fit(NamedTuple):
  """The least-squares fit ``D_ij ≈ h_i + h_j + c · X_ij`` over pairs i < j."""
  r2: float            # of the three-term fit
  r2_offsets: float    # of h_i + h_j alone
  slope: float         # c


def additive_fit(dissimilarity: np.ndarray, covariate: np.ndarray) -> Fit:
  """How much of a dissimilarity per-task offsets and one pair covariate explain.

  Examples:
    >>> x = np.array([[0, 1, 2, 0.5], [1, 0, 3, 1], [2, 3, 0, 4], [0.5, 1, 4, 0]])
    >>> h = np.array([1.0, 2.0, 0.5, 1.5])
    >>> d = h[:, None] + h[None, :] + 3 * x
    >>> fit = additive_fit(d, x)
    >>> round(fit.r2, 6), round(fit.slope, 6)
    (1.0, 3.0)
  """
  d = np.asarray(dissimilarity, np.float64)
  x = np.asarray(covariate, np.float64)
  m = len(d)
  if m < 4:
    raise UserError(f"an additive fit over task pairs needs at least 4 tasks (m + 1 "
                    f"coefficients, m(m−1)/2 pairs), got {m}")
  i, j = np.triu_indices(m, 1)
  offsets = np.zeros((len(i), m))
  offsets[np.arange(len(i)), i] = offsets[np.arange(len(i)), j] = 1.0
  target = d[i, j]

  def r2(design):
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    total = np.sum((target - target.mean()) ** 2)
    return (1.0 - np.sum(residual ** 2) / total if total > 0 else 1.0), coef

  full, coef = r2(np.column_stack([offsets, x[i, j]]))
  alone, _ = r2(offsets)
  return Fit(float(full), float(alone), float(coef[-1]))


def noise_inputs(taskset: TaskSet, seed: int = 0) -> TaskSet:
  """The TaskSet with Gaussian-noise training inputs (same shapes, mean and spread per
  feature), labels unchanged: a control for what the landscape measure reads.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> noisy = noise_inputs(ts)
    >>> noisy.train.inputs.shape == ts.train.inputs.shape
    True
    >>> bool((noisy.train.labels == ts.train.labels).all())
    True
  """
  train = taskset.train
  if not isinstance(train, data_lib.ArrayDataset) or not hasattr(train.inputs, "shape"):
    raise UserError("the noise-input control needs training inputs held as one array "
                    "(tgroup.data.ArrayDataset)")
  x = np.asarray(train.inputs)
  rng = np.random.default_rng(seed)
  noise = rng.standard_normal(x.shape) * x.std(0, keepdims=True) + x.mean(0, keepdims=True)
  return dataclasses.replace(taskset, train=data_lib.ArrayDataset(noise.astype(x.dtype),
                                                                  train.labels))
