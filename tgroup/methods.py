"""The grouping methods a pipeline can compare, and what each one needs.

- gain methods group on a matrix collected during one multi-task run:
  ``principled`` (self-pair or marginal form, partition), ``first_order`` (its
  Taylor approximation, partition), ``tag`` and ``cosine`` (TAG's affinity and
  its gradient-cosine baseline, TAG's own selection: a cover without singletons);
- ``hoa`` trains every pair and every single task and groups on Standley's
  higher-order approximation of the resulting validation table (a cover);
- ``oracle`` trains every task subset and selects on the measured validation
  table (a partition);
- ``landscape`` trains nothing: per-sample one-step optima at initialisation
  give a task dissimilarity, a graph attention network embeds the task graph
  and a Gaussian mixture clusters the embeddings (a partition);
- baselines: ``stl`` (every task alone), ``mtl_all`` (one network),
  ``random`` (random partitions with the same number of groups).
"""
from __future__ import annotations

from typing import NamedTuple

GAIN_MEASURE = {  # method -> (measure, grouping objective, overlap); principled set by form
    "tag": ("tag", "tag", True),
    "cosine": ("cosine", "tag", True),
    "first_order": ("first_order", "principled", False),
}
PRINCIPLED_FORMS = {"self_pair": ("principled", "principled"),
                    "marginal": ("principled_marginal", "marginal")}
GAIN_METHODS = ("principled", "tag", "cosine", "first_order")
TABLE_METHODS = ("hoa", "oracle")
TRAINING_FREE = ("landscape",)
BASELINES = ("random", "stl", "mtl_all")
METHODS = GAIN_METHODS + TABLE_METHODS + TRAINING_FREE + BASELINES
# Constraints a Gaussian-mixture clustering can honour (the rest need the MIP).
LANDSCAPE_CONSTRAINTS = ("num_groups", "max_groups")
OVERLAP = {"tag": True, "cosine": True, "hoa": True}


class GainSpec(NamedTuple):
  measure: str
  objective: str
  overlap: bool


def gain_spec(method: str, principled_form: str) -> GainSpec:
  """What a gain method collects and how it groups."""
  if method == "principled":
    return GainSpec(*PRINCIPLED_FORMS[principled_form], False)
  return GainSpec(*GAIN_MEASURE[method])


def needs_group_count(method: str, principled_form: str) -> bool:
  """Self-pair gains always prefer singletons when the number of groups is free."""
  return gain_spec(method, principled_form).objective == "principled" if (
      method in GAIN_METHODS) else method == "random"
