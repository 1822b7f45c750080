"""Grouping-constraint flags, shared by the benchmark launchers and ``launch.group``.

No JAX import: the grouping tools run where only gains files are.
"""
from __future__ import annotations

from absl import flags

from tgroup.errors import UserError
from tgroup.grouping import Constraints
from tgroup.grouping.budget import COST_MODELS

_NUM_GROUPS = flags.DEFINE_integer(
    "num_groups", None, "Exact number of groups (networks). Unset: the launcher's default; "
    "0: free, the MIP chooses (self-pair principled gains then always pick singletons: use "
    "the marginal form).")
_MAX_GROUPS = flags.DEFINE_integer("max_groups", None, "At most this many groups.")
_MIN_GROUP_SIZE = flags.DEFINE_integer("min_group_size", 1, "Every group has >= this many tasks.")
_MAX_GROUP_SIZE = flags.DEFINE_integer("max_group_size", None,
                                       "Every group has <= this many tasks.")
_MUST_LINK = flags.DEFINE_list("must_link", [], "Pairs always grouped together: a:b,c:d.")
_CANNOT_LINK = flags.DEFINE_list("cannot_link", [], "Pairs never grouped together: a:b,c:d.")
_ALONE = flags.DEFINE_list("alone", [], "Tasks that must be trained alone: a,b.")
_BUDGET = flags.DEFINE_float("budget", None, "The chosen networks' costs (see --cost_model) "
                             "sum to at most this.")
_COST_MODEL = flags.DEFINE_enum(
    "cost_model", "params", list(COST_MODELS),
    "What a network's cost counts, measured by XLA on the compiled forward pass of the trunk "
    "plus the group's heads: flops, memory (bytes held: parameters, input batch, outputs, "
    "temporaries), params, or uniform (1 per network). --costs_file overrides it.")
_MAX_NETWORK_COST = flags.DEFINE_float("max_network_cost", None, "Every chosen network costs "
                                       "at most this.")
_ALLOW_HALF_SIZE = flags.DEFINE_bool(
    "allow_half_size", False, "Half-size single-task networks (trunk widths halved, their "
    "own measured cost) as extra candidates, as in Standley et al.")
_COSTS_FILE = flags.DEFINE_string(
    "costs_file", None, "JSON of user-given costs instead of measured ones: "
    '{"base": b, "per_task": {task: c}} (a network costs b plus its tasks\' costs) and/or '
    '{"groups": [{"tasks": [...], "cost": c}]}.')
_BUDGET_SWEEP = flags.DEFINE_integer(
    "budget_sweep", 0, "Solve the first gain method at this many budgets, from the cheapest "
    "feasible to the unconstrained optimum (number of groups left free), train every point's "
    "groups, write frontier.json and frontier.png; 0: no sweep.")


def _pairs(name: str, entries: list[str]) -> list[tuple[str, str]]:
  pairs = []
  for entry in entries:
    parts = entry.split(":")
    if len(parts) != 2 or not all(parts):
      raise UserError(f"--{name} entries must look like task_a:task_b, got {entry!r}")
    pairs.append((parts[0], parts[1]))
  return pairs


def constraints(default_num_groups: int | None = None) -> Constraints:
  """The grouping constraints given by the flags (``--num_groups=0``: free)."""
  num_groups = _NUM_GROUPS.value if _NUM_GROUPS.value is not None else default_num_groups
  if num_groups is not None and num_groups < 0:
    raise UserError(f"--num_groups must be >= 0 (0: free), got {num_groups}")
  return Constraints(num_groups=num_groups or None, max_groups=_MAX_GROUPS.value,
                     min_group_size=_MIN_GROUP_SIZE.value, max_group_size=_MAX_GROUP_SIZE.value,
                     must_link=_pairs("must_link", _MUST_LINK.value),
                     cannot_link=_pairs("cannot_link", _CANNOT_LINK.value),
                     alone=_ALONE.value)


def resource_flags() -> dict:
  """The budget flags as keyword arguments of ``tgroup.resources.Resources``."""
  if _BUDGET_SWEEP.value < 0 or _BUDGET_SWEEP.value == 1:
    raise UserError(f"--budget_sweep must be 0 (none) or >= 2 budgets, "
                    f"got {_BUDGET_SWEEP.value}")
  return {"cost_model": _COST_MODEL.value, "budget": _BUDGET.value,
          "max_network_cost": _MAX_NETWORK_COST.value,
          "allow_half_size": _ALLOW_HALF_SIZE.value, "costs_file": _COSTS_FILE.value,
          "budget_sweep": _BUDGET_SWEEP.value}
