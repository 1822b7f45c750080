"""Run identities: what decides whether saved gains and networks may be reused.

A rerun on the same workdir reuses the gains files and the trained networks an
earlier run saved, and resumes its collection checkpoint, but only when they
were computed from the same problem with the same settings. That sameness is
an *identity*, a JSON value hashed into file fingerprints and folder names.
It is derived, never written by hand, so that no setting can be forgotten:

- the TaskSet's own definition: a benchmark factory decorated with
  :func:`records_definition` gives every TaskSet it builds the call that built
  it (the factory's name and every argument, defaults included), so a flag a
  launcher passes to the factory is in the identity by construction;
- the run's settings that change results (for networks: the training steps
  and the chunk size; for gains: the collection settings).

A TaskSet built by hand has no definition, and nothing is reused for it; give
it one with :meth:`tgroup.tasks.TaskSet.with_definition`. ``dataclasses.replace``
drops the definition (the copy may differ in anything), so a modified TaskSet
is never confused with the one it came from.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import numbers
from typing import Any, Callable, Sequence

import numpy as np


def digest(obj: Any) -> str:
  """A short stable hash of a JSON-able object (keys sorted).

  Examples:
    >>> digest({"b": 1, "a": [2]}) == digest({"a": [2], "b": 1})
    True
    >>> len(digest("x"))
    16
  """
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def canonical(value: Any) -> Any:
  """``value`` as plain JSON (tuples as lists, NumPy scalars as numbers, keys as str).

  Functions and classes become their qualified names; any other object its
  ``repr`` (flax modules and dataclasses print every field).

  Examples:
    >>> canonical({"widths": (16, 16), "rate": np.float32(0.5), "fn": np.mean})
    {'widths': [16, 16], 'rate': 0.5, 'fn': 'numpy.mean'}
  """
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value)
  if isinstance(value, dict):
    return {str(k): canonical(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [canonical(v) for v in value]
  if isinstance(value, np.ndarray):
    return canonical(value.tolist())
  if callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
    return f"{value.__module__}.{value.__qualname__}"  # a function or a class
  return repr(value)


def definition_of(factory: Callable, args: Sequence[Any], kwargs: dict[str, Any],
                  ignore: Sequence[str] = ()) -> dict[str, Any]:
  """The identity of ``factory(*args, **kwargs)``: its name and every argument.

  Defaults are filled in, so a call that relies on a default and one that
  spells it out are the same definition, and changing a default in the code
  changes the identity of the calls that rely on it.

  Examples:
    >>> def make(n, *, scale=1.0, workers=4):
    ...   pass
    >>> definition_of(make, (3,), {"workers": 8}, ignore=("workers",))["arguments"]
    {'n': 3, 'scale': 1.0}
  """
  bound = inspect.signature(factory).bind(*args, **kwargs)
  bound.apply_defaults()
  arguments = {k: canonical(v) for k, v in bound.arguments.items() if k not in ignore}
  return {"factory": f"{factory.__module__}.{factory.__qualname__}", "arguments": arguments}


def records_definition(factory: Callable | None = None, *, ignore: Sequence[str] = ()):
  """Decorator for TaskSet factories: the TaskSet records the call that built it.

  The decorated factory also has ``.definition(*args, **kwargs)``: the
  definition a call would record, without building anything.

  Args:
    factory: a function returning a :class:`tgroup.tasks.TaskSet`.
    ignore: arguments that cannot change any result (where data are read
      from, how many threads decode them), left out of the identity.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
    >>> ts.definition["factory"], ts.definition["arguments"]["num_clusters"]
    ('tgroup.benchmarks.synthetic.synthetic', 2)
    >>> synthetic.definition(2, 2, num_train=64, num_val=8, num_test=8) == ts.definition
    True
  """
  if factory is None:
    return functools.partial(records_definition, ignore=ignore)

  @functools.wraps(factory)
  def build(*args, **kwargs):
    definition = definition_of(factory, args, kwargs, ignore)
    return factory(*args, **kwargs).with_definition(definition)

  build.definition = lambda *args, **kwargs: definition_of(factory, args, kwargs, ignore)
  return build


def network_identity(taskset, train_steps: int, chunk_size: int, **extra) -> dict | None:
  """What determines a trained network's results besides its group and seed.

  None when the TaskSet has no definition (then nothing may be reused).
  """
  if taskset.definition is None:
    return None
  return {"taskset": taskset.definition, "tasks": list(taskset.tasks),
          "train_steps": train_steps, "chunk_size": chunk_size, **extra}


def gains_identity(taskset, collect_settings: dict) -> dict | None:
  """What determines collected gains: the TaskSet and the collection settings."""
  if taskset.definition is None:
    return None
  return {"taskset": taskset.definition, "tasks": list(taskset.tasks),
          "collect": collect_settings}
