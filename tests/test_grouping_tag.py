"""TAG's own selection problem on TAG's released CelebA affinities.

The fixture is TAG's inter-task affinity for its 9 CelebA attributes (Fifty et
al. 2021, Apache-2.0 data, as carried by the Principled-Task-Grouping repo). A
copy lives in tests/data so CI needs nothing outside the repo.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import brute_force_grouping as bf
from tgroup.grouping import Constraints, solve_grouping

FILE = "celeba_tag_affinity.json"
PLACES = (Path(__file__).parent / "data" / FILE,
          Path(__file__).parents[2] / "shared" / "data" / "tag_affinities" / FILE)


@pytest.fixture(scope="module")
def celeba():
  for path in PLACES:
    if path.exists():
      data = json.loads(path.read_text())
      return tuple(data["tasks"]), np.array(data["gains"], dtype=float)
  pytest.skip(f"{FILE} is in neither {PLACES[0]} nor {PLACES[1]}")


def test_fixture_shape(celeba):
  tasks, gains = celeba
  assert len(tasks) == 9
  assert gains.shape == (9, 9)
  assert np.isfinite(gains).all()


@pytest.mark.parametrize("max_groups", [2, 3, 4])
def test_tag_selection_matches_brute_force(celeba, max_groups):
  tasks, gains = celeba
  constraints = Constraints(max_groups=max_groups)
  result = solve_grouping(tasks, gains, "tag", constraints, overlap=True)
  expected = bf.best_cover_by_blocks(tasks, gains, "tag", constraints)
  assert result.status == "optimal"
  assert result.candidates == "all"
  assert result.objective == pytest.approx(expected, rel=1e-12, abs=1e-9)
  assert len(result.groups) <= max_groups
  assert all(len(g) >= 2 for g in result.groups)
  bf.verify_grouping(result, gains, "tag", constraints, overlap=True)


def test_more_groups_never_hurt(celeba):
  tasks, gains = celeba
  objectives = [solve_grouping(tasks, gains, "tag",
                               Constraints(max_groups=k), overlap=True).objective
                for k in (1, 2, 3, 4)]
  assert objectives == sorted(objectives)
