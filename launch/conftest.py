"""Doctest collection under launch/ (pytest's --doctest-modules imports each module).

Every benchmark launcher defines its absl flags when imported, and several share
flag names (--tasks, --train_steps, --num_clusters), so two of them cannot be
imported into one process: only the modules that hold doctests are collected.
Should two launchers with the same flag names both gain doctests, collection
fails with absl's DuplicateFlagError, not silently.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def modules_with_doctests() -> list[str]:
  """The launch/ modules whose source holds a doctest prompt."""
  out = []
  for name in sorted(os.listdir(_HERE)):
    if name.endswith(".py") and name != "conftest.py":
      with open(os.path.join(_HERE, name)) as f:
        if ">>> " in f.read():
          out.append(name)
  return out


collect_ignore = [name for name in os.listdir(_HERE)
                  if name.endswith(".py") and name not in modules_with_doctests()]
