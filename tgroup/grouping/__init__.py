"""Which tasks to train together: grouping as a linear MIP over candidate groups.

Pure Python, NumPy and python-mip (CBC); nothing here imports JAX or the model
side of tgroup, so grouping runs anywhere gains can be loaded.

Examples:
  >>> from tgroup.grouping import Constraints, solve_grouping
  >>> gains = [[2.0, 1.0, -1.0], [1.0, 2.0, -1.0], [-1.0, -1.0, 2.0]]
  >>> solve_grouping(["a", "b", "c"], gains, "principled",
  ...                Constraints(num_groups=2)).groups
  (('a', 'b'), ('c',))
"""
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.measured import solve_measured
from tgroup.grouping.result import Grouping
from tgroup.grouping.scores import OBJECTIVES
from tgroup.grouping.scores import hoa_gains
from tgroup.grouping.scores import task_scores
from tgroup.grouping.select import Selection
from tgroup.grouping.select import select_candidates
from tgroup.grouping.solve import solve_grouping

__all__ = [
    "OBJECTIVES",
    "Constraints",
    "Grouping",
    "Selection",
    "hoa_gains",
    "select_candidates",
    "solve_grouping",
    "solve_measured",
    "task_scores",
]
