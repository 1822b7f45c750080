"""One-line explanations of infeasible constraints.

Infeasibility is explained by relaxing one constraint at a time: the ones whose
removal alone restores feasibility are the ones to name. That is cheap here
(each check is a small feasibility MIP) and always says something a user can
act on, unlike an irreducible infeasible subsystem of the MIP rows.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


def explain_infeasible(active: Sequence[tuple[str, str]],
                       is_feasible_without: Callable[[str], bool],
                       what: str, note: str = "",
                       subject: str = "grouping") -> str:
  """The message of an InfeasibleError.

  Args:
    active: ``(name, description)`` of every constraint in force, in the order
      to report them, e.g. ``("num_groups", "num_groups=2")``.
    is_feasible_without: says whether the problem is feasible once the named
      constraint is removed (all others kept).
    what: what cannot be done, e.g. "cannot hold 9 tasks".
    note: appended to the summary (e.g. that singletons are excluded).
    subject: "grouping", or "selection" for a table selection.

  Returns:
    One line naming the culprits and saying which relaxations help.

  Examples:
    >>> active = [("num_groups", "num_groups=2"),
    ...           ("max_group_size", "max_group_size=3"),
    ...           ("alone", "alone=['a']")]
    >>> explain_infeasible(active, lambda n: n != "alone", "cannot hold 9 tasks")
    'no grouping satisfies the constraints: num_groups=2 with \
max_group_size=3 cannot hold 9 tasks (relaxing any one of num_groups, \
max_group_size makes it feasible)'
  """
  culprits = [name for name, _ in active if is_feasible_without(name)]
  shown = [d for n, d in active if n in culprits] or [d for _, d in active]
  summary = " with ".join(shown) if shown else "the objective"
  if len(culprits) == 1:
    clause = f"relaxing {culprits[0]} makes it feasible"
  elif culprits:
    clause = f"relaxing any one of {', '.join(culprits)} makes it feasible"
  elif active:
    clause = "no single constraint's removal makes it feasible; relax several"
  else:
    clause = "no constraint is set"
  return (f"no {subject} satisfies the constraints: {summary} {what}{note} "
          f"({clause})")
