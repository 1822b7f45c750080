"""tgroup: which tasks of a multi-task problem should be trained together.

The package root imports nothing heavy: ``tgroup.grouping`` is pure Python and
NumPy and must stay importable without JAX, so public names load lazily.
"""
from tgroup import lazy

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
    "Resources": "tgroup.resources",
    "LandscapeConfig": "tgroup.methods",
    "CalibratedConfig": "tgroup.methods",
    "Method": "tgroup.methods",
    "Outcome": "tgroup.methods",
    "UserError": "tgroup.errors",
}
__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)
