"""tgroup: which tasks of a multi-task problem should be trained together.

The package root imports nothing heavy: ``tgroup.grouping`` is pure Python and
NumPy and must stay importable without JAX, so public names load lazily.
"""
import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "TaskSet": "tgroup.tasks",
    "Batch": "tgroup.data",
    "ArrayDataset": "tgroup.data",
    "Gains": "tgroup.gains",
    "CollectConfig": "tgroup.gains",
    "collect_gains": "tgroup.gains",
    "Constraints": "tgroup.grouping",
    "solve_grouping": "tgroup.grouping",
    "PipelineConfig": "tgroup.pipeline",
    "run_pipeline": "tgroup.pipeline",
    "UserError": "tgroup.errors",
}


def __getattr__(name):
  if name in _PUBLIC:
    return getattr(importlib.import_module(_PUBLIC[name]), name)
  raise AttributeError(f"module 'tgroup' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_PUBLIC))
