"""Groups from task embeddings: a Gaussian mixture, its size chosen by BIC.

The last stage of the landscape method (Thakur et al. 2024, docs/design.md §2): fit a
Gaussian mixture to the task embeddings of :mod:`tgroup.landscape.gat` and
read each task's group off its most likely component.

Well-posedness. There are as few points as tasks (m ≈ 9) in ``dim`` ≈ 8
dimensions: a full covariance per component (dim·(dim+1)/2 = 36 numbers) from
three points is singular, and even a diagonal one (dim numbers) is fitted to
noise. We use ``covariance_type="spherical"``: one variance per component,
the fewest parameters that still let components differ in spread, and the
smallest BIC penalty per component. Two further guards:

- The embeddings are centred and divided by one overall scale (the root mean
  per-dimension variance) before fitting. A single scalar keeps the geometry;
  it makes the variance floor below mean the same thing for every embedding.
- ``reg_covar`` (default 0.3, in those standardised units) is a variance
  floor: BIC's resolution. Without one a component sitting on a single task
  has zero variance and unbounded likelihood, so BIC picks one group per task;
  with it, a component narrower than the floor gains nothing from splitting,
  and BIC weighs real separation against the parameters each component costs.
  Measured over 20 seeds of GAT embeddings of planted block dissimilarities
  (within-block 1, across 4, plus Gaussian noise): floor 0.3 chose exactly
  the planted partition 20/20 for blocks 3×3 (noise 0.3, 0.6, 1.0), 2×2 and
  5×2 and 8×5 and 1+4+4 (noise 0.3), 2+3+4 (0.5), 4×4 and 8×5 (1.0); 18/20 for
  5×2 at noise 1.0; 17/20 for 3×3 at noise 1.5 (k = 3 every time; a given
  num_groups=3 is also right 17/20). Other floors: 0.1 over-split
  (11/20 on 2×2 and on 3×3 at noise 1.0), 0.2 slightly (18/20 on 4×4 at
  noise 1.0), 0.5 merged pair blocks (2/20 on 5×2 at noise 1.0), 1.0 merged
  nearly everything. On an unstructured dissimilarity (uniform in [1, 4])
  0.3 chose one group 18/20. Weak contrast defeats BIC: within 3 / across 4
  gives one group 20/20, and 5×2 with within 2 / noise 0.6 is right 4/20
  (given the number of groups, both are recovered 20/20).

Empty groups. ``predict`` takes each task's most responsible component, and a
component whose weight collapsed during EM can be nobody's most responsible:
``predict`` can return fewer than k labels (measured on embeddings of planted
3 × 3 dissimilarities, 10 seeds × k = 1..9 × 10 restarts: 39% of fits, none
at k ≤ 3, every fit at k = 9). Every fit is restarted ``n_init`` times from
k-means++ seeds. With a given number of groups we keep the most likely
restart whose labels use all k components; if none does, the floor is
lowered tenfold at a time (down to scikit-learn's default 1e-6) and the fit
repeated (with k distinct embeddings this filled all k in every case tested);
only if it still does not (e.g. fewer distinct embeddings than k) do we
return fewer groups, with a warning. When BIC chooses, a model with an empty
component is scored as fitted (BIC charges it for the unused component) and
the number of groups reported is the number of distinct labels. No empty
group is ever returned.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from tgroup.errors import UserError


# scikit-learn's default variance floor: the lowest we go when a fixed number of
# groups does not fill at the BIC floor.
_MIN_FLOOR = 1e-6


def canonical_labels(labels) -> np.ndarray:
  """Renumbers groups 0, 1, ... in the order of their first task.

  Args:
    labels: integer-valued ``(m,)`` array of arbitrary group ids.

  Returns:
    int ``(m,)`` array, the same partition, with task 0 in group 0 and each
    new group numbered one above the largest before it.

  Examples:
    >>> canonical_labels([2, 2, 0, 5, 0]).tolist()
    [0, 0, 1, 2, 1]
  """
  labels = np.asarray(labels)
  _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
  rank = np.empty(len(first), dtype=int)
  rank[np.argsort(first)] = np.arange(len(first))
  return rank[inverse.reshape(-1)]


def groups_from_labels(labels, tasks: Sequence[str]) -> tuple[tuple[str, ...], ...]:
  """Task names per group, groups ordered by their first task's index.

  Args:
    labels: ``(m,)`` group id of each task.
    tasks: the m task names, in label order.

  Returns:
    A tuple of groups, each a tuple of task names in task order.

  Raises:
    UserError: if there are not as many labels as tasks.

  Examples:
    >>> groups_from_labels([1, 0, 1], ["a", "b", "c"])
    (('a', 'c'), ('b',))
  """
  labels = np.asarray(labels).reshape(-1)
  if len(labels) != len(tasks):
    raise UserError(f"{len(labels)} labels for {len(tasks)} tasks")
  canon = canonical_labels(labels)
  return tuple(tuple(t for t, g in zip(tasks, canon) if g == k)
               for k in range(canon.max() + 1 if len(canon) else 0))


def _standardise(x: np.ndarray) -> np.ndarray:
  x = x - x.mean(axis=0)
  scale = np.sqrt(np.mean(np.square(x)))
  # All tasks embedded at one point: nothing to scale, any k fits them alike.
  return x / scale if scale > 0 else x


def _fit(x: np.ndarray, k: int, seed: int, n_init: int, reg_covar: float):
  """Fits ``n_init`` spherical mixtures; returns them as (model, labels) best first."""
  from sklearn.mixture import GaussianMixture  # pylint: disable=g-import-not-at-top
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  fits = []
  for r in range(n_init):
    gm = GaussianMixture(k, covariance_type="spherical", reg_covar=reg_covar,
                         n_init=1, init_params="k-means++", max_iter=500,
                         random_state=int(np.random.SeedSequence([seed, r]).generate_state(1)[0]))
    with warnings.catch_warnings():
      # k-means++ on duplicated points and EM stopping at max_iter both warn;
      # both are handled here (fewer labels, best of several restarts).
      warnings.simplefilter("ignore", ConvergenceWarning)
      gm.fit(x)
    fits.append((gm.score(x), r, gm, gm.predict(x)))
  fits.sort(key=lambda f: (-f[0], f[1]))
  return [(gm, labels) for _, _, gm, labels in fits]


def mixture_groups(embeddings, num_groups: int | None = None, *, seed: int = 0,
                   max_groups: int | None = None, n_init: int = 10,
                   reg_covar: float = 0.3) -> tuple[np.ndarray, int]:
  """Groups tasks by a spherical Gaussian mixture over their embeddings.

  Args:
    embeddings: float ``(m, dim)``, one row per task.
    num_groups: the number of groups; ``None`` chooses it by the lowest BIC
      over k = 1 .. min(m, max_groups or m).
    seed: seeds the k-means++ restarts (deterministic for a fixed seed).
    max_groups: upper bound for the BIC search (ignored when ``num_groups``
      is given).
    n_init: restarts per number of components.
    reg_covar: variance floor in standardised units (see the module
      docstring).

  Returns:
    ``(labels, k)``: int ``(m,)`` canonical labels (task 0 in group 0, groups
    numbered by first task) and k, the number of distinct labels (no group is
    empty). With ``num_groups`` given k equals it unless there are fewer
    distinct embeddings than that (then a warning says so).

  Raises:
    UserError: if the embeddings are not a finite 2-D array, a group count
      is not an integer in 1..m, or a setting is out of range.

  Examples:
    >>> z = np.array([[0., 0.], [0.1, 0.], [5., 5.], [5., 5.1], [0., 0.1]])
    >>> labels, k = mixture_groups(z)
    >>> labels.tolist(), k
    ([0, 0, 1, 1, 0], 2)
    >>> mixture_groups(z, 3)[1]
    3
  """
  x = np.array(embeddings, dtype=np.float64)
  if x.ndim != 2 or x.shape[0] < 1 or not np.isfinite(x).all():
    raise UserError(f"embeddings must be a finite (m, dim) array, got shape {x.shape}")
  m = x.shape[0]
  for name, value in (("num_groups", num_groups), ("max_groups", max_groups)):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                              or not 1 <= value <= m):
      raise UserError(f"{name} must be an integer in 1..{m} (the number of tasks), "
                      f"got {value!r}")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
    raise UserError(f"seed must be a non-negative integer, got {seed!r}")
  if isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 1:
    raise UserError(f"n_init must be a positive integer, got {n_init!r}")
  if not (isinstance(reg_covar, numbers.Real) and np.isfinite(reg_covar) and reg_covar > 0):
    raise UserError(f"reg_covar must be a positive number, got {reg_covar!r}")
  x = _standardise(x)
  if num_groups is not None:
    # The floor is BIC's resolution; with k fixed it only has to keep EM
    # well-posed, so it is lowered (÷10 a time) until a restart fills all k.
    floors = [reg_covar]
    while floors[-1] > _MIN_FLOOR:
      floors.append(max(floors[-1] / 10, _MIN_FLOOR))
    for floor in floors:
      fits = _fit(x, int(num_groups), seed, n_init, floor)
      full = [lab for _, lab in fits if len(np.unique(lab)) == num_groups]
      if full:
        labels = full[0]
        break
    else:
      labels = fits[0][1]
      warnings.warn(f"no Gaussian mixture restart filled {num_groups} groups "
                    f"({len(np.unique(x, axis=0))} distinct embeddings); "
                    f"returning {len(np.unique(labels))}", stacklevel=2)
  else:
    best = None
    for k in range(1, min(m, max_groups or m) + 1):
      gm, labels = _fit(x, k, seed, n_init, reg_covar)[0]
      bic = gm.bic(x)
      # Strict improvement only: on ties the smaller model wins.
      if best is None or bic < best[0]:
        best = (bic, labels)
    labels = best[1]
  labels = canonical_labels(labels)
  return labels, int(labels.max()) + 1


def landscape_groups(dissimilarity, tasks: Sequence[str], key, *,
                     num_groups: int | None = None, knn: int | None = None,
                     max_groups: int | None = None, **gat_kwargs) -> dict:
  """Task groups from a landscape dissimilarity: graph → GAT embeddings → mixture.

  Args:
    dissimilarity: ``(m, m)`` task dissimilarity (see
      :func:`tgroup.landscape.graph.similarity_graph`).
    tasks: the m task names, in matrix order.
    key: JAX PRNG key; it seeds the GAT and (through a derived integer) the
      mixture's restarts, so a fixed key gives a fixed answer.
    num_groups: the number of groups, or ``None`` to choose it by BIC.
    knn: optional symmetric kNN sparsification of the graph.
    max_groups: upper bound for the BIC search.
    **gat_kwargs: passed to :func:`tgroup.landscape.gat.gat_embeddings`
      (``dim``, ``hidden``, ``heads``, ``steps``, ``learning_rate``).

  Returns:
    A JSON-ready dict: ``groups`` (list of lists of task names, ordered by
    first task), ``num_groups``, ``adjacency`` and ``embeddings`` (lists of
    lists), ``gat_loss`` (final reconstruction loss) and ``chosen_by``
    (``"given"`` or ``"bic"``).

  Raises:
    UserError: on an invalid dissimilarity, task list or setting.

  Examples:
    >>> import jax
    >>> d = np.array([[0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0.]])
    >>> out = landscape_groups(d, ["a", "b", "c", "d"], jax.random.key(0), num_groups=2,
    ...                        dim=2, steps=100)
    >>> out["groups"], out["chosen_by"]
    ([['a', 'b'], ['c', 'd']], 'given')
  """
  # Deferred so that the graph and mixture stay importable without JAX.
  import jax  # pylint: disable=g-import-not-at-top
  from tgroup.landscape import gat  # pylint: disable=g-import-not-at-top
  from tgroup.landscape import graph  # pylint: disable=g-import-not-at-top
  tasks = list(tasks)
  adjacency = graph.similarity_graph(dissimilarity, knn=knn)
  if len(tasks) != adjacency.shape[0] or len(set(tasks)) != len(tasks):
    raise UserError(f"need {adjacency.shape[0]} distinct task names for a "
                    f"{adjacency.shape[0]}x{adjacency.shape[0]} dissimilarity, got {tasks}")
  embeddings, loss = gat.gat_embeddings(adjacency, key, **gat_kwargs)
  # The mixture's seed comes from the key's bits on the host: an eager
  # jax.random.split/randint would each compile a threefry program (≈ 0.3-0.5 s
  # measured), more than the mixture itself takes.
  seed = int(np.random.SeedSequence(
      np.asarray(jax.random.key_data(key)).ravel().tolist()).generate_state(1)[0] % 2**20)
  labels, k = mixture_groups(embeddings, num_groups, seed=seed, max_groups=max_groups)
  return {"groups": [list(g) for g in groups_from_labels(labels, tasks)],
          "num_groups": k,
          "adjacency": adjacency.tolist(),
          "embeddings": np.asarray(embeddings, float).tolist(),
          "gat_loss": loss,
          "chosen_by": "given" if num_groups is not None else "bic"}
