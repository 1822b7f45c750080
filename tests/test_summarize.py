"""launch.summarize's ground-truth separation of a gains matrix."""
import numpy as np

from launch.summarize import separation
from tgroup.gains import Gains


def test_separation_is_the_worst_column_margin_and_skips_uncollected_entries():
  g = np.array([[0.0, 0.5, 0.1],
                [0.4, 0.0, 0.2],
                [0.3, 0.1, 0.0]])
  counts = np.ones((3, 3), int) - np.eye(3, dtype=int)  # diagonal never collected
  gains = Gains(("a", "b", "c"), "principled_marginal", g, counts)
  # column a: own {b} 0.4 vs other {c} 0.3 -> +0.1; column b: own {a} 0.5 vs 0.1 -> +0.4;
  # column c (alone): no own entries collected, skipped.
  assert np.isclose(separation(gains, [["a", "b"], ["c"]]), 0.1)
  assert np.isclose(separation(gains, [["a", "c"], ["b"]]), 0.1 - 0.2)


def test_per_task_rows_show_each_tasks_loss_and_metric_under_each_method(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from launch.summarize import per_task_rows  # pylint: disable=g-import-not-at-top
  entry = lambda loss: {"groups": [["a", "b"]], "total_test_loss": 2 * loss, "delta_m": 0.0,
                        "per_task": {"a": {"test_loss": loss, "test_metric": 10 * loss},
                                     "b": {"test_loss": loss + 1, "test_metric": None}}}
  (tmp_path / "report.json").write_text(json.dumps(
      {"tasks": ["a", "b"], "metric": "mae", "methods": {"stl": entry(0.5), "mtl_all": entry(1)}}))
  assert per_task_rows(str(tmp_path)) == [
      "| task: test loss / mae | stl | mtl_all |", "|---|---|---|",
      "| a | 0.5000 / 5.0000 | 1.0000 / 10.0000 |", "| b | 1.5000 / n/a | 2.0000 / n/a |"]


def test_cost_rows_average_regret_and_count_recoveries_over_runs(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from launch.summarize import cost_rows  # pylint: disable=g-import-not-at-top
  def run(name, regret, match, seconds):
    wd = tmp_path / name
    wd.mkdir()
    entry = lambda r, mt, net: {"groups": [["a"], ["b"]], "total_test_loss": 1.0, "delta_m": 0.0,
                                "regret": r, "matches_ground_truth": mt,
                                "cost": {"networks": net, "seconds": seconds}}
    (wd / "report.json").write_text(json.dumps({"ground_truth_groups": [["a"], ["b"]], "methods": {
        "principled": entry(regret, match, 1), "stl": entry(None, False, 0)}}))
    return str(wd)
  rows = cost_rows([run("s0", 0.0, True, 2.0), run("s1", 0.3, False, 4.0)])
  assert rows[2] == "| principled | +0.1500 | +0.000 +0.300 | 1/2 | 1 | 3.0 |"
  assert rows[3] == "| stl | n/a | n/a n/a | 0/2 | 0 | 3.0 |"
