"""Resource-aware grouping in a pipeline run: network costs, budgets, half-size networks.

:class:`Resources` is what a user asks for (a cost model, a total budget, a
per-network cap, half-size single-task networks, a budget sweep);
:func:`run_budget` turns it into the :class:`~tgroup.grouping.budget.Budget`
the MIP honours, with costs measured by XLA once per network size
(:mod:`tgroup.costs`) or read from a file; :class:`HalfSizeNetworks` trains the
half-size networks a grouping chose.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

from tgroup import evaluate
from tgroup.errors import UserError
from tgroup.grouping import Grouping
from tgroup.grouping.budget import Budget, check_cost_model, file_costs
from tgroup.tasks import TaskSet


@dataclasses.dataclass(frozen=True)
class Resources:
  """Network costs and the limits on them (resource-aware grouping).

  Attributes:
    cost_model: what a network's cost counts, measured by XLA on the compiled
      forward pass (:mod:`tgroup.costs`): ``flops``, ``memory``, ``params`` or
      ``uniform`` (1 per network). Ignored with ``costs_file``.
    budget: the chosen networks' costs sum to at most this (every grouping
      method that can honour it, the oracle included); None: no total.
    max_network_cost: every chosen network costs at most this; None: no cap.
    allow_half_size: half-size single-task networks (the trunk's widths
      halved, :func:`tgroup.costs.half_width`) as extra candidates; a chosen one
      is trained as such, with its own cache entry.
    costs_file: user-given costs (:func:`tgroup.grouping.budget.costs_from_json`)
      instead of measured ones.
    budget_sweep: solve the first method that groups by the gains MIP at this
      many budgets, from the cheapest feasible to the unconstrained optimum,
      train every point's groups and write ``frontier.json`` and
      ``frontier.png`` (:mod:`tgroup.budget_sweep`); 0: no sweep.
    cost_batch_size: batch of the measured forward pass (None: the TaskSet's).
  """
  cost_model: str = "params"
  budget: float | None = None
  max_network_cost: float | None = None
  allow_half_size: bool = False
  costs_file: str | None = None
  budget_sweep: int = 0
  cost_batch_size: int | None = None

  @property
  def limits(self) -> bool:
    """Whether any limit applies to the groupings themselves."""
    return self.budget is not None or self.max_network_cost is not None or self.allow_half_size

  @property
  def active(self) -> bool:
    return self.limits or self.budget_sweep > 0

  def validate(self, methods: Sequence) -> None:
    """Refuses bad values, and limits or a sweep that none of ``methods`` can honour."""
    check_cost_model(self.cost_model)
    if self.budget_sweep < 0 or self.budget_sweep == 1:
      raise UserError(f"budget_sweep must be 0 (none) or >= 2 budgets, got {self.budget_sweep}")
    if self.cost_batch_size is not None and self.cost_batch_size < 1:
      raise UserError(f"cost_batch_size must be >= 1, got {self.cost_batch_size}")
    for method in methods:
      if self.limits and not method.budgets:
        raise UserError(f"{method.name} cannot honour a budget, max_network_cost or half-size "
                        f"networks ({method.summary})")
    if self.budget_sweep and not any(m.objective is not None for m in methods):
      raise UserError("budget_sweep sweeps the first method that groups by the gains MIP "
                      "(principled, tag, cosine, first_order or hoa); none is in methods")


def run_budget(taskset: TaskSet, resources: Resources) -> Budget | None:
  """The :class:`Budget` of a run's resources (costs measured once per network size)."""
  if not resources.active:
    return None
  from tgroup import costs as costs_lib  # pylint: disable=g-import-not-at-top
  if resources.costs_file:
    cost = file_costs(resources.costs_file, taskset.tasks)
    model = f"file {os.path.basename(resources.costs_file)}"
  else:
    cost = costs_lib.measured_cost_fn(taskset, resources.cost_model,
                                      batch_size=resources.cost_batch_size or taskset.batch_size)
    model = resources.cost_model
  return Budget(cost=cost, total=resources.budget, max_network_cost=resources.max_network_cost,
                allow_half_size=resources.allow_half_size, cost_model=model)


def limits_only(budget: Budget | None) -> Budget | None:
  """The budget where it limits the grouping; None when only a sweep asked for costs."""
  return budget if budget is not None and (budget.active() or budget.allow_half_size) else None


class HalfSizeNetworks:
  """Trains the half-size single-task networks a grouping chose (trunk widths halved).

  They are the TaskSet's model with a half-width trunk, trained like every
  network and cached under their own identity, so never confused with the
  full-size network of the same task.
  """

  def __init__(self, taskset: TaskSet, train_options: Mapping, cache):
    from tgroup import costs as costs_lib  # pylint: disable=g-import-not-at-top
    self.taskset = dataclasses.replace(
        taskset, model=costs_lib.network_model(taskset, taskset.num_tasks, half_size=True))
    self.train_options = dict(train_options)
    self.cache = cache

  def results(self, grouping: Grouping | None, results: Mapping) -> dict:
    """``results`` with each half-size group of ``grouping`` replaced by its network's."""
    if grouping is None or grouping.half_size is None or not any(grouping.half_size):
      return dict(results)
    index = {t: i for i, t in enumerate(grouping.tasks)}
    groups = [tuple(index[t] for t in g) for g, h in zip(grouping.groups, grouping.half_size)
              if h]
    trained = evaluate.train_groups(self.taskset, groups, cache=self.cache, **self.train_options)
    return {**results, **trained}
