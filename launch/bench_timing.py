"""Timing helpers of ``launch.bench``: compiled functions, interleaved repeats, medians,
and how much of a run went into tracing, lowering and compiling JAX programs.

Measurements of several functions are interleaved round by round so that load
from other processes on a shared machine hits them alike, and ratios taken in
one run stay meaningful.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from typing import Callable, Iterator, Mapping

import jax
import numpy as np


# JAX's monitoring events for the three stages of making a program, each reported
# as a (start, end) wall-clock span. Tracing spans nest (an inner jit is traced
# inside its caller's trace), so a stage's time is the union of its spans. The
# names are JAX's, not a public contract: tests/test_bench_timing.py fails if a
# real compile stops producing them.
_STAGE_EVENTS = {"trace_s": "/jax/core/compile/jaxpr_trace_duration",
                 "lower_s": "/jax/core/compile/jaxpr_to_mlir_module_duration",
                 "compile_s": "/jax/core/compile/backend_compile_duration"}


def union_seconds(spans) -> float:
  """Total length covered by possibly overlapping ``(start, end)`` intervals.

  Examples:
    >>> union_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)])
    4.0
  """
  total, reach = 0.0, float("-inf")
  for start, end in sorted(spans):
    if end > reach:
      total += end - max(start, reach)
      reach = end
  return total


def _program_name(fun_name: str) -> str:
  """Tracing events name the Python function, lowering and compiling ``jit(name)``."""
  return fun_name[4:-1] if fun_name.startswith("jit(") and fun_name.endswith(")") else fun_name


@dataclasses.dataclass
class CompileStages:
  """What :func:`compile_stage_seconds` recorded: ``(stage, program, start, end)`` spans."""
  spans: list[tuple[str, str, float, float]] = dataclasses.field(default_factory=list)

  def seconds(self) -> dict[str, float]:
    """Wall time covered by each stage's spans: ``trace_s``, ``lower_s``, ``compile_s``."""
    return {stage: union_seconds([(a, b) for s, _, a, b in self.spans if s == stage])
            for stage in _STAGE_EVENTS}

  def by_program(self) -> dict[str, dict[str, float]]:
    """The same per program (the jitted function's name), slowest first."""
    names = {name for _, name, _, _ in self.spans}
    per = {name: CompileStages([sp for sp in self.spans if sp[1] == name]).seconds()
           for name in names}
    return dict(sorted(per.items(), key=lambda kv: -sum(kv[1].values())))


@contextlib.contextmanager
def compile_stage_seconds() -> Iterator[CompileStages]:
  """Records the time spent inside the block tracing, lowering and compiling JAX programs.

  The stages come from JAX's monitoring events: tracing Python into jaxprs,
  lowering jaxprs to StableHLO, and XLA compilation (or loading from the
  persistent cache). A stage's time is the wall time its events cover, so
  nested traces count once.

  Examples:
    >>> import jax.numpy as jnp
    >>> with compile_stage_seconds() as stages:
    ...   _ = jax.jit(lambda x: x * 3 + 1)(jnp.arange(4.0))
    >>> seconds = stages.seconds()
    >>> sorted(seconds), seconds["compile_s"] > 0, "<lambda>" in stages.by_program()
    (['compile_s', 'lower_s', 'trace_s'], True, True)
  """
  stage_of = {event: stage for stage, event in _STAGE_EVENTS.items()}
  stages = CompileStages()

  def listen(event, start, end, **kwargs):
    if event in stage_of:
      stages.spans.append((stage_of[event], _program_name(kwargs.get("fun_name", "?")),
                           start, end))

  jax.monitoring.register_event_time_span_listener(listen)
  try:
    yield stages
  finally:
    jax.monitoring.unregister_event_time_span_listener(listen)


def device_description() -> str:
  """e.g. ``cpu (2 cores, x86_64)``, ``gpu: NVIDIA H100 80GB HBM3`` or ``... × 8 devices``."""
  devices = jax.devices()
  dev = devices[0]
  count = f" × {len(devices)} devices" if len(devices) > 1 else ""
  if dev.platform == "cpu":
    return f"cpu ({os.cpu_count()} cores, {platform.machine()}){count}"
  return f"{dev.platform}: {dev.device_kind}{count}"


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, rounds: int = 30,
                     warmup: int = 3) -> dict[str, float]:
  """Median milliseconds of each zero-argument function (results blocked on).

  Examples:
    >>> import jax.numpy as jnp
    >>> ms = time_interleaved({"add": lambda: jnp.ones(3) + 1}, rounds=3, warmup=1)
    >>> ms["add"] > 0
    True
  """
  for fn in fns.values():
    for _ in range(warmup):
      jax.block_until_ready(fn())
  samples = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      samples[name].append(1e3 * (time.perf_counter() - start))
  return {name: float(np.median(v)) for name, v in samples.items()}
