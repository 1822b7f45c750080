"""The MIP equals brute force on random small instances, per constraint kind."""
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import brute_force_grouping as bf
from tgroup.errors import InfeasibleError
from tgroup.grouping import Constraints, solve_grouping

NAMES = tuple("abcdef")
OBJECTIVES = ("principled", "marginal", "tag", "hoa")
KINDS = ("none", "num_groups", "max_groups", "min_group_size",
         "max_group_size", "must_link", "cannot_link", "alone", "mixed")
SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _seed(*labels):
  """A fixed seed per parametrisation: reproducible, yet different draws."""
  return seed(zlib.crc32("-".join(labels).encode()))


def _pairs(draw, tasks, max_size):
  if len(tasks) < 2:
    return []
  pair = st.lists(st.sampled_from(tasks), min_size=2, max_size=2,
                  unique=True).map(tuple)
  return draw(st.lists(pair, min_size=1, max_size=max_size))


def _constraints(draw, kind, tasks):
  m = len(tasks)
  if kind == "none":
    return Constraints()
  if kind == "num_groups":
    return Constraints(num_groups=draw(st.integers(1, m + 1)))
  if kind == "max_groups":
    return Constraints(max_groups=draw(st.integers(1, m)))
  if kind == "min_group_size":
    return Constraints(min_group_size=draw(st.integers(1, m + 1)))
  if kind == "max_group_size":
    return Constraints(max_group_size=draw(st.integers(1, m)))
  if kind == "must_link":
    return Constraints(must_link=_pairs(draw, tasks, 2))
  if kind == "cannot_link":
    return Constraints(cannot_link=_pairs(draw, tasks, 3))
  if kind == "alone":
    return Constraints(alone=draw(st.lists(st.sampled_from(tasks), min_size=1,
                                           max_size=2, unique=True)))
  # mixed: any subset of the kinds at once, valid on their own.
  fields = {}
  if draw(st.booleans()):
    fields["max_groups"] = draw(st.integers(1, m))
    if draw(st.booleans()):
      fields["num_groups"] = draw(st.integers(1, fields["max_groups"]))
  elif draw(st.booleans()):
    fields["num_groups"] = draw(st.integers(1, m))
  if draw(st.booleans()):
    fields["max_group_size"] = draw(st.integers(1, m))
  if draw(st.booleans()):
    fields["min_group_size"] = draw(st.integers(
        1, fields.get("max_group_size", m)))
  for name, size in (("must_link", 1), ("cannot_link", 2)):
    if draw(st.booleans()):
      fields[name] = _pairs(draw, tasks, size)
  if draw(st.booleans()):
    fields["alone"] = [draw(st.sampled_from(tasks))]
  return Constraints(**fields)


@st.composite
def instances(draw, max_m, kind):
  # Half the draws at the largest size, where the interesting cases are.
  m = draw(st.one_of(st.just(max_m), st.integers(1, max_m)))
  tasks = NAMES[:m]
  # Gains on a grid of quarters: distinct objective values then differ by
  # far more than CBC's tolerances, so "equal to brute force" is exact.
  gains = np.array(draw(st.lists(st.integers(-8, 8), min_size=m * m,
                                 max_size=m * m)), dtype=float).reshape(m, m)
  return tasks, gains / 4, _constraints(draw, kind, tasks)


def _check(tasks, gains, objective, constraints, overlap):
  if overlap:
    expected = bf.best_cover(tasks, gains, objective, constraints)
  else:
    expected = bf.best_partition(tasks, gains, objective, constraints)
  if expected is None:
    with pytest.raises(InfeasibleError, match="no grouping satisfies"):
      solve_grouping(tasks, gains, objective, constraints, overlap=overlap)
    return
  result = solve_grouping(tasks, gains, objective, constraints,
                          overlap=overlap)
  assert result.status == "optimal"
  assert result.candidates == "all"
  assert abs(result.objective - expected) <= 1e-9, (result, expected)
  bf.verify_grouping(result, gains, objective, constraints, overlap)


# (model, tasks at most, examples): a cover's brute force enumerates who serves
# whom, so it stays at 5 tasks.
MODELS = [("partition", 6, 25), ("cover", 5, 20)]


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model, max_tasks, examples", MODELS)
def test_grouping_matches_brute_force(model, max_tasks, examples, kind, objective):

  @_seed(model, kind, objective)
  @settings(max_examples=examples, **SETTINGS)
  @given(instances(max_tasks, kind))
  def run(instance):
    tasks, gains, constraints = instance
    _check(tasks, gains, objective, constraints, overlap=model == "cover")

  run()


@seed(0)
@settings(max_examples=25, **SETTINGS)
@given(instances(4, "max_groups"), st.sampled_from(OBJECTIVES))
def test_cover_brute_forces_agree(instance, objective):
  """The three cover references agree where all three apply."""
  tasks, gains, constraints = instance
  by_assignment = bf.best_cover(tasks, gains, objective, constraints)
  by_collection = bf.best_cover_collections(tasks, gains, objective,
                                            constraints)
  by_blocks = bf.best_cover_by_blocks(tasks, gains, objective, constraints)
  assert (by_assignment is None) == (by_collection is None) == (
      by_blocks is None)
  if by_assignment is not None:
    assert by_assignment == pytest.approx(by_collection, abs=1e-9)
    assert by_assignment == pytest.approx(by_blocks, abs=1e-9)
