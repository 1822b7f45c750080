"""What a grouping method is: one record, what it gets from a run, what it returns.

A method is a value, as an optax transformation is: a :class:`Method` says what
it measures, how its groups are scored and shaped (objective, partition or
cover), which constraints and budgets it can honour, and holds the function
from a run's data to its groups. The pipeline reads these fields and nothing
else: it never tells methods apart by name. docs/methods.md shows how to add
one.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from tgroup.grouping.constraints import CONSTRAINT_NAMES

if TYPE_CHECKING:  # annotations only: the pipeline imports the methods, not the reverse
  from tgroup.evaluate import NetworkResult
  from tgroup.gains import Gains
  from tgroup.grouping import Grouping
  from tgroup.grouping.budget import Budget
  from tgroup.tasks import TaskSet

Groups = Sequence[tuple[int, ...]]
# One grouping to train and score: groups of task indices, and for a cover the
# index of the group serving each task (None: each task's only group).
Draw = tuple[Groups, "dict[int, int] | None"]


@dataclasses.dataclass(frozen=True)
class Context:
  """What a method gets from the run it is part of.

  Attributes:
    taskset: the problem.
    config: the run's :class:`tgroup.pipeline.PipelineConfig`.
    workdir: where the run writes; a method writes its own extra files here.
    gains: measure name -> :class:`~tgroup.gains.Gains` of the run's one
      collection run, for every measure a method of the run asked for.
    collect_seconds: wall time of that collection run (the time it took when
      its gains were reused, 0 when given by the caller).
    budget: the budget limits a grouping must honour, or None.
    groupings: the groupings of the methods that ran before this one, in the
      order of ``config.methods`` (the random baseline copies a group count).
    train: ``train(groups) -> {group: NetworkResult}``: one network per group
      (task-index tuples), trained on the run's protocol or read from its cache.
  """
  taskset: TaskSet
  config: Any
  workdir: str
  gains: Mapping[str, Gains]
  collect_seconds: float
  budget: Budget | None
  groupings: Mapping[str, Grouping]
  train: Callable[[Sequence[tuple[int, ...]]], dict[tuple[int, ...], NetworkResult]]


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What a method returns: its groups and what it spent finding them.

  Attributes:
    draws: the groupings to train and score; one for most methods, several for
      the random baseline (their scores are averaged).
    grouping: the solved grouping (written as ``groups_<method>.json``), or
      None for a baseline.
    gains: the matrix it grouped on, if any: the first grouping method's is
      written as ``gains.json`` and drawn in ``gains.png``; its ``measure``
      goes into the report.
    seconds: ``{"collect": s, "group": s}``: measuring and grouping time.
    table: networks it trained that the results every method is scored on
      may take (the oracle's table of every subset), or None.
    report: fields of its own for its entry in report.json.
    networks: training runs it spent choosing its groups beyond the m
      single-task networks every run trains (its cost next to its regret): the
      collection run (1) for gain methods, every pair for ``hoa``, every subset
      of two or more tasks for the oracle, none for training-free methods.
  """
  draws: tuple[Draw, ...]
  grouping: Grouping | None = None
  gains: Gains | None = None
  seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)
  table: Mapping[tuple[int, ...], NetworkResult] | None = None
  report: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  networks: int = 0


@dataclasses.dataclass(frozen=True)
class Method:
  """One grouping method, found in one place.

  Attributes:
    name: its name in ``--methods`` and report.json.
    summary: what it measures and how it groups, in one line.
    group: ``group(method, context) -> Outcome``: from the run's data to the
      groups (the record itself is passed, so one function can serve several
      records, as it does for the four gain methods).
    measure: the gain measure it needs from the run's shared collection run
      (see :data:`tgroup.gains.MEASURES`), or None.
    signals: further measures it reads from that run where the TaskSet can
      give them (``first_order`` is dropped for a TaskSet that scores
      lookaheads on its ``lookahead_losses``).
    objective: the grouping objective (:data:`tgroup.grouping.OBJECTIVES`)
      when it groups by the gains MIP, or None.
    overlap: a cover (groups may overlap; each task is served by its best
      chosen group) rather than a partition.
    constraints: the constraints it can honour (fields of
      :class:`tgroup.grouping.Constraints`); any other is refused before work.
    budgets: it can honour budgets (a total cost, a per-network cap,
      half-size networks).
    needs_validation: it selects on validation results.
    baseline: a reference grouping that measures nothing (STL, MTL-all,
      random); it runs after the other methods and never fills groups.json.
    reference: its table of every task subset is what every method's regret
      is measured against.
    check: ``check(config, taskset)``: refuses this method's own bad settings
      with a UserError before any work, or None.
  """
  name: str
  summary: str
  group: Callable[[Method, Context], Outcome]
  measure: str | None = None
  signals: tuple[str, ...] = ()
  objective: str | None = None
  overlap: bool = False
  constraints: tuple[str, ...] = CONSTRAINT_NAMES
  budgets: bool = True
  needs_validation: bool = False
  baseline: bool = False
  reference: bool = False
  check: Callable[[Any, TaskSet], None] | None = None

  @property
  def needs_group_count(self) -> bool:
    """Self-pair gains always prefer singletons when the number of groups is free."""
    return self.objective == "principled"

  def run(self, context: Context) -> Outcome:
    return self.group(self, context)
