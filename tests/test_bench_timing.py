"""launch.bench_timing's compile-stage accounting: spans are merged, not summed,
and only what runs inside the block is counted."""
import jax
import jax.numpy as jnp
from hypothesis import given, strategies as st

from launch import bench_timing


def test_union_seconds_counts_overlapping_spans_once():
  assert bench_timing.union_seconds([]) == 0
  assert bench_timing.union_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == 4.0
  assert bench_timing.union_seconds([(0.0, 10.0), (2.0, 3.0), (4.0, 5.0)]) == 10.0  # nested
  assert bench_timing.union_seconds([(3.0, 4.0), (0.0, 1.0)]) == 2.0  # unsorted


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10)), max_size=12))
def test_union_seconds_equals_counting_covered_unit_cells(raw):
  # Integer spans: the union's length is the number of unit cells [k, k+1) any covers.
  spans = [(float(a), float(a + w)) for a, w in raw]
  cells = {k for a, w in raw for k in range(a, a + w)}
  assert bench_timing.union_seconds(spans) == len(cells)


def test_compile_stage_seconds_sees_only_programs_made_inside_the_block():
  x = jnp.arange(5.0)
  before = jax.jit(lambda v: v + 2)
  jax.block_until_ready(before(x))  # compiled outside the block
  with bench_timing.compile_stage_seconds() as stages:
    jax.block_until_ready(before(x))  # cached: no new trace, lowering or compile
  assert stages.seconds() == {"trace_s": 0.0, "lower_s": 0.0, "compile_s": 0.0}
  assert stages.by_program() == {}

  def scaled_sine(v):
    return jnp.sin(v) * 3

  with bench_timing.compile_stage_seconds() as stages:
    jax.block_until_ready(jax.jit(scaled_sine)(x))
  seconds = stages.seconds()
  assert all(seconds[k] > 0 for k in ("trace_s", "lower_s", "compile_s"))
  # Tracing is reported under the function's name, lowering and compiling under
  # jit(name): both land on one program.
  assert set(stages.by_program()) >= {"scaled_sine"}
  assert all(v > 0 for v in stages.by_program()["scaled_sine"].values())
  # The listener is gone after the block: later compiles add no spans.
  recorded = len(stages.spans)
  jax.block_until_ready(jax.jit(lambda v: jnp.cos(v) - 1)(x))
  assert len(stages.spans) == recorded


def test_nested_spans_count_once_and_unrelated_events_are_ignored():
  # Spans as JAX reports them (an inner trace inside its caller's, as when a
  # jitted function calls another), recorded by hand so the timing is exact.
  trace = "/jax/core/compile/jaxpr_trace_duration"
  compile_ = "/jax/core/compile/backend_compile_duration"
  with bench_timing.compile_stage_seconds() as stages:
    jax.monitoring.record_event_time_span(trace, 10.0, 20.0, fun_name="outer")
    jax.monitoring.record_event_time_span(trace, 12.0, 15.0, fun_name="inner")
    jax.monitoring.record_event_time_span(compile_, 20.0, 26.0, fun_name="jit(outer)")
    jax.monitoring.record_event_time_span("/some/other/event", 0.0, 100.0, fun_name="outer")
  assert stages.seconds() == {"trace_s": 10.0, "lower_s": 0.0, "compile_s": 6.0}
  assert stages.by_program() == {
      "outer": {"trace_s": 10.0, "lower_s": 0.0, "compile_s": 6.0},
      "inner": {"trace_s": 3.0, "lower_s": 0.0, "compile_s": 0.0}}
