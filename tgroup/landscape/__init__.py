"""Training-free task grouping from the sample-wise optimisation landscape (docs/design.md §2).

Thakur et al. 2024: a task dissimilarity matrix (:mod:`tgroup.landscape.measure`)
becomes a weighted task graph (:mod:`tgroup.landscape.graph`), a graph attention
network learns task embeddings from it (:mod:`tgroup.landscape.gat`), and a
Gaussian mixture over the embeddings gives the groups
(:mod:`tgroup.landscape.cluster`).

Names load lazily, as in :mod:`tgroup.gains`: the graph and the mixture are
NumPy (scikit-learn only once a mixture is fitted), so importing this package,
or :mod:`tgroup.landscape.graph` through it, does not import JAX or
scikit-learn.

Examples:
  Two calls, from a TaskSet to groups (a dict; see :func:`landscape_groups`):

  >>> import jax
  >>> from tgroup.benchmarks.synthetic import synthetic
  >>> from tgroup.landscape import landscape_dissimilarity, landscape_groups
  >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
  >>> d = landscape_dissimilarity(ts)
  >>> out = landscape_groups(d, ts.tasks, jax.random.key(0), num_groups=2)
  >>> out["groups"]
  [['c0_t0', 'c0_t1'], ['c1_t0', 'c1_t1']]
"""
from __future__ import annotations

from tgroup import lazy

_PUBLIC = {
    "fast_dissimilarity_sum": "tgroup.landscape.measure",
    "identical_heads": "tgroup.landscape.measure",
    "landscape_dissimilarity": "tgroup.landscape.measure",
    "materialized_dissimilarity_sum": "tgroup.landscape.measure",
    "pairwise_l1": "tgroup.landscape.measure",
    "same_heads": "tgroup.landscape.measure",
    "check_dissimilarity": "tgroup.landscape.graph",
    "similarity_graph": "tgroup.landscape.graph",
    "gat_embeddings": "tgroup.landscape.gat",
    "groups_from_labels": "tgroup.landscape.cluster",
    "landscape_groups": "tgroup.landscape.cluster",
    "mixture_groups": "tgroup.landscape.cluster",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)
