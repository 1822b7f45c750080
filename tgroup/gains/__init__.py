"""Transfer gains measured during one multi-task training run (docs/design.md §2).

Names load lazily: the file format (:class:`Gains`) is plain NumPy, so tools
that only read gains files (``launch.group``) never import JAX.
"""
from tgroup import lazy

_PUBLIC = {
    "CollectConfig": "tgroup.gains.collect",
    "collect_gains": "tgroup.gains.collect",
    "run_collection": "tgroup.gains.collect",
    "MEASURES": "tgroup.gains.combinations",
    "Gains": "tgroup.gains.gains",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)
