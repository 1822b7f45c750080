"""The calibrated method: cheap signals, a few trained group networks, a predictor, the MIP.

The one collection run gives every signal tgroup measures (lookahead gains,
first-order, TAG, cosine) and the landscape dissimilarity costs no training.
None of them alone predicts well which groups train well (docs/results.md), so
this method spends a small budget of group networks where they inform most and
learns how the signals map to validation losses on this very problem:

1. The first round trains the groups the standardised lookahead gains choose
   (the higher-order objective: each member's mean received gain).
2. Each round fits :class:`tgroup.calibration.GroupLossPredictor` on every
   network trained so far, then solves the measured-loss MIP over every
   allowed candidate group with *optimistic* losses: trained groups at their
   measured loss, the others at mean − κ·std. The groups of that solution not
   yet trained are trained next (those most promising first while the budget
   lasts): a group is trained when it could still be part of the best
   grouping, the upper-confidence rule of combinatorial bandits.
3. It stops when the budget is spent or the optimistic solution has only
   trained groups (no untrained group could still improve on it), and groups
   by the same MIP with *pessimistic* losses (mean + κ·std), so that a group
   nobody trained is chosen only where the predictor is sure of it.

Every constraint and budget of the measured-loss MIP applies. Networks come from
the run's cache, so a rerun retrains nothing and takes the same decisions.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time

import numpy as np

from tgroup import calibration
from tgroup import io
from tgroup.errors import UserError
from tgroup.grouping import solve_measured
from tgroup.grouping.constraints import allowed_groups
from tgroup.methods.method import Context, Method, Outcome
from tgroup.tasks import TaskSet

# The signals the predictor reads, as named in its coefficients. ``first_order``
# is absent for a TaskSet that scores lookaheads on its lookahead_losses.
LOOKAHEAD_SIGNALS = ("principled", "tag", "cosine", "first_order")


@dataclasses.dataclass(frozen=True)
class CalibratedConfig:
  """Settings of the calibrated method.

  Attributes:
    networks: group networks of two or more tasks it may train (the m
      single-task networks every run trains are not counted); None: a third
      of the m(m−1)/2 pairs that HOA trains, at least 1.
    kappa: standard deviations of the predictor's optimism while searching
      and of its pessimism when deciding.
    max_candidates: refuse a problem with more candidate groups (every allowed
      task subset of two or more tasks) than this; ``max_group_size`` lowers it.
  """
  networks: int | None = None
  kappa: float = 2.0
  max_candidates: int = 20_000

  def budget(self, m: int) -> int:
    """Networks it may train for ``m`` tasks.

    Examples:
      >>> CalibratedConfig().budget(6), CalibratedConfig().budget(9), CalibratedConfig(3).budget(9)
      (5, 12, 3)
    """
    return self.networks if self.networks is not None else max(1, m * (m - 1) // 6)


def candidate_count(m: int, max_size: int | None) -> int:
  """Task subsets of 2 to ``max_size`` (None: m) tasks.

  Examples:
    >>> candidate_count(6, None), candidate_count(40, 3)
    (57, 10660)
  """
  top = m if max_size is None else min(m, max_size)
  return sum(math.comb(m, s) for s in range(2, top + 1))


def _check(config, taskset: TaskSet) -> None:
  c, m = config.calibrated, taskset.num_tasks
  if c.networks is not None and c.networks < 1:
    raise UserError(f"calibrated networks (--calibrated_networks) must be >= 1, got {c.networks}")
  if not (c.kappa >= 0 and math.isfinite(c.kappa)):
    raise UserError(f"calibrated kappa (--calibrated_kappa) must be >= 0, got {c.kappa}")
  count = candidate_count(m, config.constraints.max_group_size)
  if count > c.max_candidates:
    fits = [s for s in range(2, m + 1) if candidate_count(m, s) <= c.max_candidates]
    hint = (f"set max_group_size to at most {fits[-1]} ({candidate_count(m, fits[-1])} "
            "candidates)" if fits else "even pairs alone are too many")
    raise UserError(f"calibrated scores every task subset of 2 or more tasks: {count} for {m} "
                    f"tasks, more than its limit of {c.max_candidates}; {hint}")
  if not _candidates(taskset, config.constraints):
    raise UserError("calibrated: the constraints allow no group of two or more tasks, so it "
                    "has nothing to train")


def _candidates(taskset: TaskSet, constraints) -> list[tuple[int, ...]]:
  m = taskset.num_tasks
  top = m if constraints.max_group_size is None else min(m, constraints.max_group_size)
  groups = [g for s in range(2, top + 1) for g in itertools.combinations(range(m), s)]
  if not groups:
    return []
  keep = allowed_groups(calibration.membership(groups, m), taskset.tasks, constraints)
  return [g for g, k in zip(groups, keep) if k]


def _signals(context: Context) -> tuple[dict, float]:
  """Each signal oriented like gains (higher: the pair trains well together), and the
  seconds the landscape dissimilarity took."""
  from tgroup.methods import landscape  # pylint: disable=g-import-not-at-top
  out = {s: context.gains[s].gains for s in LOOKAHEAD_SIGNALS if s in context.gains}
  start = time.perf_counter()
  out["landscape"] = -landscape.dissimilarity(context)
  return out, time.perf_counter() - start


def _solve(context: Context, losses: dict, alone: np.ndarray):
  m = context.taskset.num_tasks
  table = {(a,): alone for a in range(m)}
  table.update(losses)
  return solve_measured(context.taskset.tasks, table, context.config.constraints,
                        budget=context.budget,
                        time_limit_s=context.config.grouping_time_limit_s)


def _member_losses(groups, totals, alone: np.ndarray) -> dict:
  """Per-group ``(m,)`` arrays whose members' entries sum to the group's total.

  The MIP reads only the members' sum of a group, so a predicted total is spread
  over the members in proportion to their losses alone.
  """
  out = {}
  for g, total in zip(groups, totals):
    losses = np.zeros(len(alone))
    share = alone[list(g)] / alone[list(g)].sum() if alone[list(g)].sum() else 1.0 / len(g)
    losses[list(g)] = total * share
    out[g] = losses
  return out


def _group(method: Method, context: Context) -> Outcome:
  ts, config = context.taskset, context.config
  settings = config.calibrated
  m = ts.num_tasks
  budget = settings.budget(m)
  signals, landscape_s = _signals(context)
  # The single-task networks every run trains (for STL and Δm): not this method's cost.
  singles = context.train([(a,) for a in range(m)])
  alone = np.array([float(singles[(a,)].val_loss[a]) for a in range(m)])
  start = time.perf_counter()
  groups = _candidates(ts, config.constraints)
  if not groups:
    raise UserError("calibrated: the constraints allow no group of two or more tasks to train")
  names = sorted(signals)
  features = calibration.received_features(signals, groups)
  predictor = calibration.GroupLossPredictor(features, groups, alone)
  trained: dict = {}  # group -> NetworkResult, in training order
  train_s = wall_s = 0.0  # the networks' training time (as recorded) and the wall time here

  def train(batch):
    nonlocal train_s, wall_s
    began = time.perf_counter()
    results = context.train(batch)
    wall_s += time.perf_counter() - began
    for g in batch:
      trained[g] = results[g]
      train_s += results[g].seconds

  # Round 1: the groups the standardised lookahead gains choose.
  principled = names.index("principled")
  prior = features[..., principled].sum(axis=1)  # members' mean received gain, summed
  first = _solve(context, {g: _spread(g, -p, m) for g, p in zip(groups, prior)}, np.zeros(m))
  batch = [g for g in first.indices()[0] if len(g) > 1]
  if not batch:  # nothing pairs up by the gains: start from the pair they rank highest
    pairs = [c for c, g in enumerate(groups) if len(g) == 2]
    batch = [groups[max(pairs, key=lambda c: prior[c])]] if pairs else [groups[0]]
  train(batch[:budget])
  rounds = 1
  kappa = settings.kappa
  row = {g: c for c, g in enumerate(groups)}
  while len(trained) < budget:
    prediction = predictor.fit(_measured(trained)).predict()
    optimistic = _losses(groups, prediction.mean - kappa * prediction.std, trained, alone)
    choice = _solve(context, optimistic, alone)
    new = [g for g in choice.indices()[0] if len(g) > 1 and g not in trained]
    if not new:
      break
    new.sort(key=lambda g: prediction.mean[row[g]] - kappa * prediction.std[row[g]]
             - alone[list(g)].sum())
    train(new[:budget - len(trained)])
    rounds += 1
  prediction = predictor.fit(_measured(trained)).predict()
  grouping = _solve(context, _losses(groups, prediction.mean + kappa * prediction.std,
                                     trained, alone), alone)
  seconds = {"collect": context.collect_seconds + landscape_s + train_s,
             "group": time.perf_counter() - start - wall_s}
  report = {"trained": [[ts.tasks[t] for t in g] for g in trained], "rounds": rounds,
            "network_budget": budget, "kappa": kappa,
            "predictor": predictor.coefficients(names + ["groupmates"])}
  io.write_json(os.path.join(context.workdir, "calibrated.json"), {
      **report, "trained_val_loss": [
          {"group": [ts.tasks[t] for t in g], "val_loss": [float(r.val_loss[t]) for t in g]}
          for g, r in trained.items()]})
  return Outcome(draws=(grouping.indices(),), grouping=grouping, seconds=seconds,
                 report=report, networks=len(trained))


def _spread(g, total, m):
  """An ``(m,)`` array whose members' entries share ``total`` equally."""
  out = np.zeros(m)
  out[list(g)] = total / len(g)
  return out


def _measured(trained: dict) -> dict:
  return {g: r.val_loss for g, r in trained.items()}


def _losses(groups, totals, trained: dict, alone: np.ndarray) -> dict:
  """The MIP's table: trained groups at their measured losses, the rest at ``totals``."""
  out = _member_losses(groups, totals, alone)
  for g, r in trained.items():
    out[g] = np.asarray(r.val_loss, dtype=np.float64)
  return out


CALIBRATED = Method(
    name="calibrated",
    summary="cheap signals + a few trained groups (chosen by optimism) fit a predictor of "
    "group losses; measured-loss MIP on its pessimistic predictions; partition",
    group=_group, measure="principled", signals=LOOKAHEAD_SIGNALS[1:], needs_validation=True,
    check=_check)
