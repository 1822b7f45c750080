"""Public names that load their module on first use (PEP 562).

``tgroup``, ``tgroup.gains`` and ``tgroup.landscape`` export names whose
modules import JAX or scikit-learn; loading them only when used keeps the
pure-NumPy parts (grouping, gains files, the task graph) importable without
either.
"""
from __future__ import annotations

import importlib
from typing import Callable, Mapping


def exports(package: str, public: Mapping[str, str]) -> tuple[Callable, Callable]:
  """``(__getattr__, __dir__)`` for ``package``: ``public`` maps a name to its module.

  Examples:
    >>> getattr_, dir_ = exports("demo", {"sqrt": "math"})
    >>> getattr_("sqrt")(9.0), "sqrt" in dir_()
    (3.0, True)
  """

  def __getattr__(name: str):
    if name in public:
      return getattr(importlib.import_module(public[name]), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  def __dir__() -> list[str]:
    return sorted(public)

  return __getattr__, __dir__
