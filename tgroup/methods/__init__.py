"""The grouping methods a pipeline can compare, one record each (:class:`Method`).

==============  ================================================  =========================
method          groups from                                       module
==============  ================================================  =========================
principled      lookahead transfer gains (self-pair or marginal)  :mod:`.gain_based`
first_order     their first-order Taylor expansion                :mod:`.gain_based`
tag             TAG's inter-task affinity (a cover)               :mod:`.gain_based`
cosine          gradient cosine similarity (a cover)              :mod:`.gain_based`
hoa             every pair and single task trained (a cover)      :mod:`.hoa`
oracle          every task subset trained                         :mod:`.oracle`
calibrated      all signals + a few trained groups → predictor    :mod:`.calibrated`
landscape       per-sample one-step optima, no training           :mod:`.landscape`
random          random partitions                                 :mod:`.baselines`
stl, mtl_all    every task alone; one network for all             :mod:`.baselines`
==============  ================================================  =========================

A user's own method is a :class:`Method` passed in ``PipelineConfig.methods``
next to these names (docs/methods.md).

Examples:
  >>> m = get("tag")
  >>> m.measure, m.objective, m.overlap
  ('tag', 'tag', True)
  >>> get("principled").objective, get("principled", principled_form="self_pair").objective
  ('marginal', 'principled')
"""
from __future__ import annotations

from tgroup.errors import UserError
from tgroup.methods.baselines import MTL_ALL, RANDOM, STL
from tgroup.methods.calibrated import CALIBRATED, CalibratedConfig
from tgroup.methods.gain_based import COSINE, FIRST_ORDER, PRINCIPLED_FORMS, TAG
from tgroup.methods.hoa import HOA
from tgroup.methods.landscape import LANDSCAPE, LandscapeConfig
from tgroup.methods.method import Context, Method, Outcome
from tgroup.methods.oracle import ORACLE

# The built-in methods, in the order help texts list them.
_BUILT_IN = {m.name: m for m in (PRINCIPLED_FORMS["marginal"], TAG, COSINE, FIRST_ORDER, HOA,
                                 ORACLE, CALIBRATED, LANDSCAPE, RANDOM, STL, MTL_ALL)}
METHODS = tuple(_BUILT_IN)


def get(name: str, principled_form: str = "marginal") -> Method:
  """The record of a built-in method (``principled`` in the given form).

  Raises:
    UserError: an unknown method or form.
  """
  if principled_form not in PRINCIPLED_FORMS:
    raise UserError(f"principled_form must be one of {list(PRINCIPLED_FORMS)}, "
                    f"got {principled_form!r}")
  if name == "principled":
    return PRINCIPLED_FORMS[principled_form]
  if name not in _BUILT_IN:
    raise UserError(f"unknown method(s) [{name!r}]; available: {', '.join(METHODS)}")
  return _BUILT_IN[name]


__all__ = ["METHODS", "PRINCIPLED_FORMS", "CalibratedConfig", "Context", "LandscapeConfig",
           "Method", "Outcome", "get"]
