"""The four methods that group on gains collected during one multi-task run.

Each needs one measure from the run's shared collection run
(:mod:`tgroup.gains.lookahead`) and groups by the MIP of :mod:`tgroup.grouping`
with its own objective and model (docs/design.md §2–§3):

- ``principled`` (Wang, Pan, Yu 2024): lookahead transfer gains, partition;
  self-pair form (the paper's; needs a number of groups) or marginal form (a
  natural zero: the MIP may choose how many groups);
- ``first_order``: the first-order Taylor expansion of the self-pair gain, from
  the Gram matrix of per-task gradients (no lookaheads), partition;
- ``tag`` (Fifty et al. 2021): inter-task affinity of a shared-trunk step, TAG's
  selection (a cover without singletons);
- ``cosine``: the cosine similarity of shared-trunk gradients, TAG's selection.
"""
from __future__ import annotations

import time

from tgroup import io
from tgroup import stats
from tgroup.grouping import solve_grouping
from tgroup.methods.method import Context, Method, Outcome


def group_on_gains(method: Method, context: Context) -> Outcome:
  """Solves the grouping MIP on the method's measure of the shared collection run."""
  gains = context.gains[method.measure]
  start = time.perf_counter()
  grouping = solve_grouping(list(context.taskset.tasks), gains.gains, method.objective,
                            context.config.constraints, overlap=method.overlap,
                            budget=context.budget,
                            time_limit_s=context.config.grouping_time_limit_s)
  seconds = {"collect": context.collect_seconds, "group": time.perf_counter() - start}
  report = {}
  if method.measure == "first_order" and "principled" in context.gains:
    # How far the approximation ranks pairs as the exact self-pair gains do.
    report["spearman_with_principled"] = io.finite_or_none(stats.spearman(
        gains.gains.ravel(), context.gains["principled"].gains.ravel()))
  return Outcome(draws=(grouping.indices(),), grouping=grouping, gains=gains, seconds=seconds,
                 report=report, networks=1)  # the collection run


def _gain_method(name: str, summary: str, measure: str, objective: str,
                 overlap: bool = False) -> Method:
  return Method(name=name, summary=summary, group=group_on_gains, measure=measure,
                objective=objective, overlap=overlap)


PRINCIPLED = _gain_method(
    "principled", "lookahead transfer gains with the self-pair control; partition",
    measure="principled", objective="principled")
PRINCIPLED_MARGINAL = _gain_method(
    "principled", "lookahead transfer gains, marginal form (a natural zero); partition",
    measure="principled_marginal", objective="marginal")
FIRST_ORDER = _gain_method(
    "first_order", "first-order Taylor expansion of the self-pair gains; partition",
    measure="first_order", objective="principled")
TAG = _gain_method(
    "tag", "TAG's inter-task affinity of a shared-trunk step; cover without singletons",
    measure="tag", objective="tag", overlap=True)
COSINE = _gain_method(
    "cosine", "cosine similarity of shared-trunk gradients; TAG's cover without singletons",
    measure="cosine", objective="tag", overlap=True)

# principled_form -> the principled record of that form.
PRINCIPLED_FORMS = {"self_pair": PRINCIPLED, "marginal": PRINCIPLED_MARGINAL}
