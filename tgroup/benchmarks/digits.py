"""Binary attributes of scikit-learn's bundled handwritten digits (real data, offline).

Data: ``sklearn.datasets.load_digits``, 1,797 grey-scale 8×8 images of the
digits 0–9 (about 180 per digit) that ship inside scikit-learn's wheel, so
nothing is downloaded. Pixels (0–16) are scaled to [0, 1] and flattened to 64
inputs shared by every task.

Tasks: every task is a binary attribute of the digit an image shows, i.e. a set
of digit classes (:data:`ATTRIBUTES`); its label is 1 when the image's digit is
in the set. Two attributes need the same decision boundary over the ten digits
when their sets nearly agree (or nearly disagree: a complement is the same task
for a classifier), and boundaries that cut across each other when they agree on
about half the digits.

The default six (:data:`DEFAULT_TASKS`) were chosen from that argument before
any training, as two families of three:

- magnitude thresholds ``gt3`` {4..9}, ``gt4`` {5..9}, ``gt5`` {6..9}: nested
  sets, pairwise |correlation| of the class indicators 0.67–0.82;
- parity and shape ``even`` {0,2,4,6,8}, ``loop`` {0,4,6,8,9} (a closed loop),
  ``prime`` {2,3,5,7} (nearly the complement of ``loop``): 0.41–0.82;

with |correlation| 0–0.41 across the families. Tasks of a family should help
each other and compete with the other family for a narrow trunk.

The regime makes sharing matter both ways: ``num_train=300`` training images
(30 per digit; validation and test are fixed 20 % splits, ~360 images each) and
a two-layer MLP trunk of width 16 trained for 500 Adam steps. Settings tried
first (all 63 subsets trained, 1–3 seeds each): with the full training pool
(~1,080 images) at widths 4, 8 and 16, few pairs beat their two single-task
networks and none in every seed (each network learns its attribute alone; six
one-vs-rest tasks is1, is3, is4, is5, is7, is8 at width 8 likewise); with 300
images at width 8 (500 steps) nearly every pair hurt (capacity); 300 images
at width 16 showed both kinds.

Measured with these defaults (``python -m launch.digits --methods=...,oracle``,
seeds 0–4; a pair's transfer is its network's two test losses minus the two
single-task ones, negative = helps):

- negative transfer: the all-in-one network is worse than single-task training
  in 4 of 5 seeds (total test loss 1.189 against 1.091, mean over seeds);
  ``gt3`` is hurt by every partner on average, most by gt4 (+0.035, worse in
  5/5 seeds) and gt5 (+0.026, 4/5);
- positive transfer: even+loop −0.047 (better in 5/5 seeds), gt4+gt5 −0.026
  and gt4+loop −0.012 (5/5, in one seed by less than 0.001), even+prime
  −0.024, gt4+prime −0.019, gt5+loop −0.019 (4/5).
- With every network averaged over 3 seeds (``--eval_seeds=3``, seeds 0, 3, 6,
  9, 12) the best partition of the table is {gt3} {gt4,gt5,prime} {even,loop}
  in 4 of 5 runs (mean total 1.035, STL 1.113, MTL-all 1.166); even+loop,
  even+prime, gt4+prime and gt5+loop help and gt3+gt4, gt3+even hurt in 5/5.

So the design holds for gt4/gt5 and even/loop, not for gt3 (the easiest task,
test loss ≈ 0.1 alone, which no partner helps) nor for prime, which joins the
magnitude tasks rather than its near-complement ``loop``. The launcher's
default of 3 groups is that measured structure's size (half the single-task
networks); with 2 groups the oracle's choice is a near tie between partitions.

Regret against the oracle (a method's total test loss minus the oracle's with
as many groups, selected on validation; mean over seeds 0–4, all methods in one
run per seed; random is the mean of its 5 draws):

  setting               principled  tag    cosine  first_order  hoa    landscape  random
  defaults (3 groups)   0.075       0.098  0.086   0.075        0.030  0.054      0.072
  --eval_seeds=3 (*)    0.107       0.104  0.084   0.099        0.015  0.072      0.086
  --num_groups=2        0.078       0.065  0.034   0.071        0.041  0.135      0.100

(*) every network averaged over 3 seeds; seeds 0, 3, 6, 9, 12. Per-seed regrets
range from −0.04 to 0.23, so only large differences mean anything. With 3 groups
only HOA, which trains every pair, does clearly better than random groups; with
2 groups every method but landscape beats random on average. The lookahead
measures put gt3 with gt4 and gt5 (principled: 5/5 seeds at 3 groups): the
nested class sets align their gradients, yet trained together gt3 loses. This
is docs/design.md §2's caveat (one-step lookahead measures how gradients align, not
what sharing does after full training) on real data.

The model has no normalisation layers (no mutable state). Loss: softmax
cross-entropy on two logits per task; metric: the 0/1 error, so reports carry
the total test error over tasks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.errors import UserError

# Attribute name -> the digit classes for which it is true.
ATTRIBUTES: dict[str, tuple[int, ...]] = {
    "gt2": (3, 4, 5, 6, 7, 8, 9),
    "gt3": (4, 5, 6, 7, 8, 9),
    "gt4": (5, 6, 7, 8, 9),
    "gt5": (6, 7, 8, 9),
    "even": (0, 2, 4, 6, 8),
    "loop": (0, 4, 6, 8, 9),
    "prime": (2, 3, 5, 7),
    "mult3": (0, 3, 6, 9),
    "square": (0, 1, 4, 9),
    "straight": (1, 4, 7),
    "symmetric": (0, 1, 8),
    **{f"is{k}": (k,) for k in range(10)},
}
DEFAULT_TASKS = ("gt3", "gt4", "gt5", "even", "loop", "prime")
NUM_IMAGES = 1797
VAL_FRACTION = TEST_FRACTION = 0.2


def check_tasks(names: Sequence[str]) -> tuple[str, ...]:
  """Task names in the order given; a one-line UserError for unknown or repeated ones.

  Examples:
    >>> check_tasks(["even", "gt4"])
    ('even', 'gt4')
    >>> check_tasks(["even", "odd"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: unknown digits task(s) ['odd']; valid tasks: gt2, gt3, ...
  """
  names = tuple(names)
  unknown = [t for t in names if t not in ATTRIBUTES]
  if unknown or not names:
    valid = ", ".join(ATTRIBUTES)
    raise UserError(f"unknown digits task(s) {unknown}; valid tasks: {valid}")
  if len(set(names)) != len(names):
    raise UserError(f"digits tasks repeat: {list(names)}")
  return names


def load_images() -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 images as ``(n, 64)`` float32 in [0, 1], and their digits ``(n,)``."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top  (digits only)
  bunch = datasets.load_digits()
  return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def attribute_labels(digit: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
  """``(n, m)`` int32 labels: 1 where the digit is in the task's class set.

  Examples:
    >>> attribute_labels(np.array([0, 3, 7]), ["even", "prime"]).tolist()
    [[1, 0], [0, 1], [0, 1]]
  """
  return np.stack([np.isin(digit, ATTRIBUTES[t]) for t in tasks], axis=1).astype(np.int32)


def stratified_split(digit: np.ndarray, num_train: int, *, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Sorted train, validation and test indices, each about balanced over digits.

  Per digit, a seeded permutation gives the first 20 % of its images to
  validation, the next 20 % to test and the rest to a training pool. Training
  takes the first ``num_train`` images of the pool in round-robin order over
  digits (each digit's k-th image before any digit's k+1-th), so every digit
  gets ``num_train / 10`` images give or take one, and a larger ``num_train``
  contains every smaller one.

  Examples:
    >>> d = np.repeat(np.arange(10), 20)
    >>> tr, va, te = stratified_split(d, 50)
    >>> len(tr), len(va), len(te), np.bincount(d[tr]).tolist()
    (50, 40, 40, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5])
  """
  rng = np.random.default_rng(seed)
  val, test, pool = [], [], []
  for c in np.unique(digit):
    idx = rng.permutation(np.flatnonzero(digit == c))
    n_val, n_test = round(VAL_FRACTION * len(idx)), round(TEST_FRACTION * len(idx))
    val.append(idx[:n_val])
    test.append(idx[n_val:n_val + n_test])
    rest = idx[n_val + n_test:]
    pool.extend((rank, c, i) for rank, i in enumerate(rest))
  if not 1 <= num_train <= len(pool):
    raise UserError(f"num_train must be between 1 and {len(pool)}, got {num_train}")
  train = [i for _, _, i in sorted(pool)[:num_train]]
  return np.sort(train), np.sort(np.concatenate(val)), np.sort(np.concatenate(test))


def max_train(split_seed: int = 0) -> int:
  """The size of the training pool: the largest valid ``num_train``."""
  _, digit = load_images()
  return len(digit) - sum(len(s) for s in stratified_split(digit, 1, seed=split_seed)[1:])


@identity.records_definition
def digits(tasks: Sequence[str] = DEFAULT_TASKS, *, num_train: int = 300, split_seed: int = 0,
           width: int = 16, depth: int = 2, learning_rate: float = 1e-3, batch_size: int = 128,
           train_steps: int = 500) -> tasks_lib.TaskSet:
  """The digits TaskSet (binary classification; cross-entropy loss, 0/1 error metric).

  Args:
    tasks: attribute names among :data:`ATTRIBUTES`.
    num_train: training images (at most the training pool, 1,079); validation
      and test are fixed 20 % splits whatever its value.
    split_seed: seed of the split (the same for every training seed, so runs
      with different seeds differ only in initialisation and batch order).
    width, depth: the MLP trunk's hidden layers.
    learning_rate, batch_size, train_steps: Adam settings of every network.

  Examples:
    >>> ts = digits(["even", "gt4"], num_train=200)
    >>> ts.tasks, len(ts.train), ts.train.inputs.shape[1], ts.train.labels.shape
    (('even', 'gt4'), 200, 64, (200, 2))
  """
  tasks = check_tasks(tasks)
  if batch_size > num_train:
    raise UserError(f"num_train ({num_train}) must be at least the batch size ({batch_size})")
  if width < 1 or depth < 1:
    raise UserError(f"width and depth must be >= 1, got width={width}, depth={depth}")
  images, digit = load_images()
  labels = attribute_labels(digit, tasks)
  train, val, test = stratified_split(digit, num_train, seed=split_seed)
  split = lambda idx: data_lib.ArrayDataset(images[idx], labels[idx])
  return tasks_lib.TaskSet(
      name="digits",
      tasks=tasks,
      model=models.MultiTaskModel(models.MLPTrunk((width,) * depth), models.DenseHead(2),
                                  num_tasks=len(tasks)),
      sample_losses=tasks_lib.softmax_cross_entropy,
      sample_metrics=tasks_lib.classification_error,
      train=split(train),
      val=split(val),
      test=split(test),
      optimizer=optax.adam(learning_rate),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="error",
      metric_is_error=True,
      description=(f"sklearn digits, {len(tasks)} attributes, {num_train} training images, "
                   f"MLP {width}x{depth}"),
  )
