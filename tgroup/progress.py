"""Progress lines with rate and ETA for long loops, through absl logging."""
from __future__ import annotations

import time

from absl import logging


class Progress:
  """Logs ``desc: step/total (rate/s, ETA)`` at most every ``interval_s`` seconds.

  Examples:
    >>> p = Progress(10, "demo", quiet=True)
    >>> for i in range(10): p.update(i + 1)
  """

  def __init__(self, total: int, desc: str, quiet: bool = False, interval_s: float = 10.0,
               initial: int = 0):
    """``initial``: steps already done before this process (a resumed run): the rate and
    ETA count only the steps done since, so a resumed run does not look faster."""
    self.total, self.desc, self.quiet, self.interval_s = total, desc, quiet, interval_s
    self.initial = initial
    self.start = self.last = time.perf_counter()

  def update(self, done: int, extra: str = "") -> None:
    now = time.perf_counter()
    if self.quiet or (now - self.last < self.interval_s and done < self.total):
      return
    self.last = now
    rate = (done - self.initial) / max(now - self.start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    logging.info("%s: %d/%d (%.1f/s, ETA %.0fs)%s", self.desc, done, self.total, rate, eta,
                 f" {extra}" if extra else "")
