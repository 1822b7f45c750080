"""Progress lines: rate and ETA from the steps done in this process."""
from tgroup import progress


def lines_for(monkeypatch, initial):
  clock = iter([0.0, 10.0])          # construction, then one update 10 s later
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  # The line itself, whatever absl's verbosity is in this process.
  lines = []
  monkeypatch.setattr(progress.logging, "info", lambda fmt, *args: lines.append(fmt % args))
  bar = progress.Progress(1000, "collect", initial=initial, interval_s=0.0)
  bar.update(initial + 100)          # 100 steps in 10 s
  return lines


def test_fresh_run_rate_and_eta(monkeypatch):
  assert lines_for(monkeypatch, initial=0) == ["collect: 100/1000 (10.0/s, ETA 90s)"]


def test_resumed_run_counts_only_its_own_steps(monkeypatch):
  # Resumed at 800: 100 more steps in 10 s is still 10/s, and 100 steps remain.
  assert lines_for(monkeypatch, initial=800) == ["collect: 900/1000 (10.0/s, ETA 10s)"]
