"""ETT (Electricity Transformer Temperature): seven forecasting tasks from one shared history.

Data: the standard ETT CSV of Zhou et al. (Informer, 2021), columns ``date`` and
seven loads and temperatures of one transformer: ``HUFL, HULL, MUFL, MULL, LUFL,
LULL`` (high/middle/low "useful" and "useless" loads) and ``OT`` (oil
temperature), one row every 15 minutes (ETTm1, ETTm2) or every hour (ETTh1,
ETTh2). ``--data=ETTm1.csv`` reads a real file; without one, :func:`generate_csv`
writes an ETT-like file (same columns, 20 months) that goes through the same
reader, so the loader is exercised on every run and the benchmark runs offline.

Split (the Informer/Autoformer convention): with ``H`` rows per hour (4 for
ETTm, 1 for ETTh) and 30-day months, train is the first ``12·30·24·H`` rows,
validation the next ``4·30·24·H`` and test the next ``4·30·24·H``; rows after
the 20 months are unused. A window is ``input_len`` rows of all seven channels
followed by ``pred_len`` target rows. Validation and test windows start
``input_len`` rows before their block, so the first window's first target is the
block's first row and every target row lies inside its block; each channel is
scaled by the mean and standard deviation of the training block only. Training
windows start every ``window_stride`` rows (the default, two hours of data, keeps
a few thousand windows: a CPU trains on them in minutes and memory stays small);
validation and test take every window, as the literature's numbers do.

Tasks: one per channel, forecasting its next ``pred_len`` values from the
multivariate history. Loss: mean squared error over the predicted steps of the
channel (scaled units); metric: mean absolute error (reports carry MSE as the
test loss and MAE as the metric, the two numbers ETT papers give).

Model: a compact DLinear-style forecaster. The trunk splits each window into a
moving-average trend (kernel 25, edges replicated, as DLinear does) and the
remainder, flattens both ``(input_len, 7)`` arrays into one vector and maps it
through a ReLU layer (width 128) that every channel shares; each channel's head
is a linear read-out of ``pred_len`` values (:class:`tgroup.models.DenseHead`).
Chosen because it is cheap on a CPU, has no mutable state, and its shared layer
is where channels compete for or share capacity. Adam, learning rate 1e-3,
batch 128.

The generated data (:func:`generate_csv`) are built so that tasks relate in
known ways: the three useful loads share one daily profile (peaks in the day,
lower at weekends), the three useless loads another, every load follows a slow
trend of its family, and ``OT`` follows a four-hour-lagged, smoothed mix of
loads on top of an annual cycle; each channel adds its own autocorrelated noise.
"""
from __future__ import annotations

import csv
import hashlib
import io as std_io
import os
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import io
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.errors import UserError

COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
HEADER = ("date",) + COLUMNS
ROWS_PER_HOUR = {"m": 4, "h": 1}
MONTH_HOURS = 30 * 24
SPLIT_MONTHS = (12, 4, 4)  # train, validation, test
START = np.datetime64("2016-07-01T00:00:00")  # the real files' first row


class Windows(NamedTuple):
  """The windows of one split, scaled by the training statistics.

  Attributes:
    inputs: ``(n, input_len, 7)`` float32 history of every channel.
    labels: ``(n, pred_len, 7)`` float32 targets, one column per task (last axis).
    starts: ``(n,)`` row of each window's first input row in the file's data
      (row 0 is the first data line); its targets are rows
      ``start + input_len ... start + input_len + pred_len - 1``.
  """
  inputs: np.ndarray
  labels: np.ndarray
  starts: np.ndarray


class Splits(NamedTuple):
  """Train, validation and test windows and the per-channel training statistics."""
  train: Windows
  val: Windows
  test: Windows
  mean: np.ndarray
  std: np.ndarray


def rows_per_hour(variant: str) -> int:
  """4 for ETTm (15-minute rows), 1 for ETTh (hourly rows); a UserError otherwise."""
  if variant not in ROWS_PER_HOUR:
    raise UserError(f"unknown ETT variant {variant!r}: use 'm' (15-minute rows, ETTm1/ETTm2) "
                    "or 'h' (hourly rows, ETTh1/ETTh2)")
  return ROWS_PER_HOUR[variant]


def borders(variant: str) -> tuple[int, int, int, int]:
  """Row boundaries ``(0, end of train, end of validation, end of test)`` of the split.

  Examples:
    >>> borders("h"), borders("m")
    ((0, 8640, 11520, 14400), (0, 34560, 46080, 57600))
  """
  block = MONTH_HOURS * rows_per_hour(variant)
  ends = np.cumsum([0, *SPLIT_MONTHS]) * block
  return tuple(int(e) for e in ends)


def window_starts(variant: str, input_len: int, pred_len: int, window_stride: int = 1
                  ) -> dict[str, np.ndarray]:
  """First input row of every window of each split (``window_stride`` thins train only).

  Examples:
    >>> s = window_starts("h", 96, 24)
    >>> [(k, int(v[0]), int(v[-1]), len(v)) for k, v in s.items()]
    [('train', 0, 8520, 8521), ('val', 8544, 11400, 2857), ('test', 11424, 14280, 2857)]
  """
  for name, value in (("input_len", input_len), ("pred_len", pred_len),
                      ("window_stride", window_stride)):
    if int(value) < 1:
      raise UserError(f"--{name} must be >= 1, got {value}")
  b = borders(variant)
  block_names = ("train", "val", "test")
  out = {}
  for k, name in enumerate(block_names):
    # Windows of a later block begin input_len rows early: their history may come from
    # the block before, their targets never do.
    first = b[k] if k == 0 else b[k] - input_len
    last = b[k + 1] - input_len - pred_len  # the last window's last target is the block's end
    if first < 0 or last < first:
      size = b[k + 1] - b[k]
      need = (f"input_len + pred_len = {input_len + pred_len}" if k == 0 else
              f"pred_len = {pred_len} (and input_len = {input_len} at most the training block)")
      raise UserError(f"no {name} window fits: the ETT{variant} {name} block has {size} rows "
                      f"({SPLIT_MONTHS[k]} months), fewer than {need}")
    out[name] = np.arange(first, last + 1, window_stride if k == 0 else 1)
  return out


def scaler(values: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of the training block's rows only."""
  train = np.asarray(values[:borders(variant)[1]], np.float64)
  mean, std = train.mean(axis=0), train.std(axis=0)
  if not (std > 0).all():
    channel = COLUMNS[int(np.argmin(std > 0))] if len(std) == len(COLUMNS) else int(np.argmin(std))
    raise UserError(f"channel {channel} is constant over the training block: it cannot be "
                    "scaled or forecast")
  return mean, std


def splits(values: np.ndarray, variant: str, input_len: int = 96, pred_len: int = 24, *,
           window_stride: int = 1) -> Splits:
  """The standard ETT split of ``(rows, 7)`` values into scaled windows.

  Args:
    values: the file's data rows (e.g. from :func:`read_csv`), at least the
      20 months of the split; later rows are ignored.
    variant: ``"m"`` (15-minute rows) or ``"h"`` (hourly rows).
    input_len, pred_len: history and forecast lengths in rows.
    window_stride: take every k-th training window (validation and test: all).

  Raises:
    UserError: too few rows for the split, or windows too long for a block.

  Examples:
    >>> values = np.random.default_rng(0).normal(size=(14400, 7))
    >>> s = splits(values, "h", 96, 24, window_stride=4)
    >>> s.train.inputs.shape, s.val.labels.shape, int(s.test.starts[0])
    ((2131, 96, 7), (2857, 24, 7), 11424)
  """
  values = np.asarray(values)
  b = borders(variant)
  if values.ndim != 2 or values.shape[1] != len(COLUMNS):
    raise UserError(f"ETT values must have shape (rows, {len(COLUMNS)}), got {values.shape}")
  if len(values) < b[3]:
    raise UserError(f"the standard ETT{variant} split needs {b[3]} rows ({sum(SPLIT_MONTHS)} "
                    f"months of 30 days at {rows_per_hour(variant)} row(s) per hour); the data "
                    f"have {len(values)}")
  starts = window_starts(variant, input_len, pred_len, window_stride)
  mean, std = scaler(values, variant)
  scaled = ((values[:b[3]] - mean) / std).astype(np.float32)
  # (rows - length + 1, 7, length) views; copied only at the chosen starts.
  hist = np.lib.stride_tricks.sliding_window_view(scaled, input_len, axis=0)
  future = np.lib.stride_tricks.sliding_window_view(scaled[input_len:], pred_len, axis=0)

  def windows(s: np.ndarray) -> Windows:
    return Windows(np.ascontiguousarray(hist[s].transpose(0, 2, 1)),
                   np.ascontiguousarray(future[s].transpose(0, 2, 1)), s)

  return Splits(windows(starts["train"]), windows(starts["val"]), windows(starts["test"]),
                mean.astype(np.float32), std.astype(np.float32))


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
  """``(dates, values)`` of an ETT CSV: ``(rows,)`` strings and ``(rows, 7)`` float64.

  Columns are found by name (any order, extra columns ignored); values come in
  the order of :data:`COLUMNS`. Blank lines are skipped.

  Raises:
    UserError: one line naming the file and, where there is one, the line and
      column: an unreadable or empty file, a missing column, a row with the
      wrong number of fields, a cell that is not a finite number.

  Examples:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.csv")
    >>> with open(path, "w") as f:
    ...   _ = f.write("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\\n"
    ...               "2016-07-01 00:00:00,1,2,3,4,5,6,7\\n")
    >>> dates, values = read_csv(path)
    >>> dates.tolist(), values.tolist()
    (['2016-07-01 00:00:00'], [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
  """
  try:
    with open(path, newline="", encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"cannot read the ETT CSV {path}: {getattr(e, 'strerror', None) or e}"
                    ) from None
  reader = csv.reader(std_io.StringIO(text))
  header = next(reader, None)
  if not header:
    raise UserError(f"{path}: empty file; an ETT CSV starts with the header {','.join(HEADER)}")
  header = [h.strip() for h in header]
  missing = [c for c in HEADER if c not in header]
  if missing:
    raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}; an ETT CSV has the "
                    f"columns {','.join(HEADER)} (got {','.join(header)})")
  at = [header.index(c) for c in HEADER]
  dates, cells, lines = [], [], []
  for row in reader:
    if not row:
      continue
    if len(row) != len(header):
      raise UserError(f"{path}:{reader.line_num}: {len(row)} fields, but the header has "
                      f"{len(header)}")
    dates.append(row[at[0]].strip())
    cells.append([row[i] for i in at[1:]])
    lines.append(reader.line_num)
  if not cells:
    raise UserError(f"{path}: no data rows after the header")
  try:
    values = np.asarray(cells, dtype=np.float64)
  except ValueError:
    values = None
  if values is None or not np.isfinite(values).all():
    _raise_bad_cell(path, cells, lines)
  return np.asarray(dates), values


def _raise_bad_cell(path: str, cells: Sequence[Sequence[str]], lines: Sequence[int]) -> None:
  """The UserError for the first cell that is not a finite number."""
  for row, line in zip(cells, lines):
    for column, cell in zip(COLUMNS, row):
      try:
        ok = np.isfinite(float(cell))
      except ValueError:
        ok = False
      if not ok:
        raise UserError(f"{path}:{line}: column {column} holds {cell!r}, not a finite number")
  raise AssertionError("no bad cell found")  # unreachable: the caller found one


def check_spacing(path: str, dates: np.ndarray, variant: str) -> None:
  """A UserError when the first two rows are not 15 minutes (ETTm) or an hour (ETTh) apart.

  Catches an ETTh file run with ``variant="m"`` (or the reverse), which would
  silently shift every split border.
  """
  if len(dates) < 2:
    return
  try:
    first = np.datetime64(str(dates[0]).replace(" ", "T"), "s")
    second = np.datetime64(str(dates[1]).replace(" ", "T"), "s")
  except ValueError:
    raise UserError(f"{path}:2-3: dates {dates[0]!r}, {dates[1]!r} are not "
                    "YYYY-MM-DD hh:mm:ss timestamps") from None
  step = int((second - first) / np.timedelta64(1, "m"))
  want = 60 // rows_per_hour(variant)
  if step != want:
    other = "h" if variant == "m" else "m"
    raise UserError(f"{path}:2-3: rows are {step} minutes apart, but variant {variant!r} "
                    f"expects {want} (is this an ETT{other} file? use --variant={other})")


def generate_csv(path: str, variant: str = "m", seed: int = 0, months: int = sum(SPLIT_MONTHS)
                 ) -> str:
  """Writes an ETT-like CSV of ``months`` 30-day months; returns ``path``.

  Deterministic for a given ``(variant, seed, months)``: same bytes every call.
  See the module docstring for how the channels relate.

  Examples:
    >>> import tempfile
    >>> path = generate_csv(os.path.join(tempfile.mkdtemp(), "ett.csv"), "h", months=1)
    >>> dates, values = read_csv(path)
    >>> dates[:2].tolist(), values.shape
    (['2016-07-01 00:00:00', '2016-07-01 01:00:00'], (720, 7))
  """
  h = rows_per_hour(variant)
  if months < 1:
    raise UserError(f"months must be >= 1, got {months}")
  n = months * MONTH_HOURS * h
  rng = np.random.default_rng(seed)
  t = np.arange(n) / h  # hours since the start
  day, week, year = (2 * np.pi * t / p for p in (24.0, 168.0, 365.0 * 24))
  weekend = ((t // 24) % 7 >= 5).astype(np.float64)

  def noise(tau_hours: float, scale: float) -> np.ndarray:
    """Stationary AR(1) noise with correlation time ``tau_hours``, whatever the row rate."""
    from scipy import signal  # pylint: disable=g-import-not-at-top  (generation only)
    phi = np.exp(-1.0 / (tau_hours * h))
    return signal.lfilter([np.sqrt(1 - phi ** 2)], [1, -phi], rng.standard_normal(n)) * scale

  useful_day = np.sin(day - 2.0) + 0.35 * np.sin(2 * day + 0.4)
  # A quarter-day out of phase with the useful profile, with other harmonics: the two
  # families' daily patterns are uncorrelated over whole days.
  useless_day = np.cos(day - 2.0) + 0.25 * np.cos(3 * day)
  weekly = np.sin(week)
  drift = t / t[-1] if n > 1 else t
  useful_trend = noise(24 * 20, 1.0) + 0.8 * drift
  useless_trend = noise(24 * 30, 1.0) - 0.4 * drift
  loads = {
      "HUFL": 7.0 + 2.2 * useful_day + 0.6 * weekly - 0.9 * weekend + 1.5 * useful_trend,
      "MUFL": 4.5 + 1.8 * useful_day + 0.5 * weekly - 0.7 * weekend + 1.2 * useful_trend,
      "LUFL": 2.8 + 0.9 * useful_day + 0.3 * weekly - 0.3 * weekend + 0.8 * useful_trend,
      "HULL": 2.0 + 0.6 * useless_day + 0.4 * useless_trend,
      "MULL": 1.5 + 0.5 * useless_day + 0.3 * useless_trend,
      "LULL": 0.9 + 0.3 * useless_day + 0.2 * useless_trend,
  }
  scales = {"HUFL": 0.5, "MUFL": 0.4, "LUFL": 0.3, "HULL": 0.25, "MULL": 0.2, "LULL": 0.15}
  for name in scales:
    loads[name] = loads[name] + noise(3.0, scales[name])
  # Oil temperature: a 4-hour-lagged load mix, smoothed over ~6 h (thermal inertia).
  lag = 4 * h
  mix = 0.6 * loads["HUFL"] + 0.3 * loads["MUFL"] + 0.4 * loads["HULL"]
  lagged = np.concatenate([np.full(lag, mix[0]), mix[:-lag]])[:n]
  from scipy import signal  # pylint: disable=g-import-not-at-top  (generation only)
  a = np.exp(-1.0 / (6.0 * h))
  smooth = signal.lfilter([1 - a], [1, -a], lagged - lagged[0]) + lagged[0]
  ot = (14.0 + 7.0 * np.sin(year - 1.0) + 1.3 * (smooth - smooth.mean())
        + noise(12.0, 1.0))
  values = np.stack([loads[c] for c in COLUMNS[:-1]] + [ot], axis=1)
  dates = START + np.arange(n) * np.timedelta64(60 // h, "m")
  stamps = np.char.replace(np.datetime_as_string(dates, unit="s"), "T", " ")
  body = std_io.StringIO()
  np.savetxt(body, values, fmt="%.3f", delimiter=",")
  lines = body.getvalue().splitlines()
  text = ",".join(HEADER) + "\n" + "".join(f"{d},{v}\n" for d, v in zip(stamps, lines))
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  io.atomic_write_bytes(path, text.encode())
  return path


def file_digest(path: str) -> str:
  """SHA-256 of a file's bytes: the data's part of the TaskSet's identity."""
  sha = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      sha.update(chunk)
  return sha.hexdigest()


def moving_average(x: jnp.ndarray, kernel: int) -> jnp.ndarray:
  """Centred moving average over axis 1 of ``(batch, time, channels)``, edges replicated.

  Examples:
    >>> moving_average(jnp.arange(5.0)[None, :, None], 3)[0, :, 0].tolist()
    [0.3333333432674408, 1.0, 2.0, 3.0, 3.6666667461395264]
  """
  front = jnp.repeat(x[:, :1], (kernel - 1) // 2, axis=1)
  back = jnp.repeat(x[:, -1:], kernel // 2, axis=1)
  padded = jnp.concatenate([front, x, back], axis=1)
  # One cumulative sum instead of a Python loop over the kernel.
  csum = jnp.cumsum(jnp.pad(padded, ((0, 0), (1, 0), (0, 0))), axis=1)
  return (csum[:, kernel:] - csum[:, :-kernel]) / kernel


class DecompositionTrunk(nn.Module):
  """Trend (moving average) and remainder of a ``(batch, time, channels)`` window, flattened
  together and mapped through ReLU layers of ``widths``.

  Examples:
    >>> import jax
    >>> trunk = DecompositionTrunk(kernel=5, widths=(8,))
    >>> params = trunk.init(jax.random.key(0), jnp.zeros((2, 12, 7)))
    >>> trunk.apply(params, jnp.zeros((2, 12, 7))).shape
    (2, 8)
  """
  kernel: int = 25
  widths: Sequence[int] = (128,)
  param_dtype: object = jnp.float32

  @nn.compact
  def __call__(self, x):
    trend = moving_average(x, self.kernel)
    h = jnp.concatenate([x - trend, trend], axis=-1).reshape(x.shape[0], -1)
    for width in self.widths:
      h = nn.relu(nn.Dense(width, param_dtype=self.param_dtype)(h))
    return h


def sequence_squared_error(predictions, labels):
  """Per-sample MSE over the forecast: ``(m, batch, P)`` predictions, ``(batch, P, m)`` labels.

  Returns ``(batch, m)``.

  Examples:
    >>> sequence_squared_error(jnp.ones((2, 3, 4)), jnp.zeros((3, 4, 2))).shape
    (3, 2)
  """
  return jnp.mean(jnp.square(jnp.moveaxis(predictions, 0, -1) - labels), axis=1)


def sequence_absolute_error(predictions, labels):
  """Per-sample MAE over the forecast, same shapes as :func:`sequence_squared_error`."""
  return jnp.mean(jnp.abs(jnp.moveaxis(predictions, 0, -1) - labels), axis=1)


def default_stride(variant: str) -> int:
  """Two hours of rows: 8 for ETTm, 2 for ETTh (about 4,300 training windows either way)."""
  return 2 * rows_per_hour(variant)


def ett(path: str, *, variant: str = "m", input_len: int = 96, pred_len: int = 24,
        window_stride: int | None = None, width: int = 128, kernel: int = 25,
        learning_rate: float = 1e-3, batch_size: int = 128, train_steps: int = 1000
        ) -> tasks_lib.TaskSet:
  """The ETT TaskSet read from the CSV at ``path`` (7 forecasting tasks; MSE loss, MAE metric).

  The TaskSet's definition holds every argument but ``path`` plus the SHA-256 of
  the file, so saved gains and networks are reused for the same data wherever
  the file lies, and never for a file that changed.

  Args:
    path: an ETT CSV (real, or written by :func:`generate_csv`).
    variant: ``"m"`` (15-minute rows) or ``"h"`` (hourly rows).
    input_len, pred_len: history and forecast lengths in rows.
    window_stride: every k-th training window; None: :func:`default_stride`.
    width: the trunk's ReLU layer; kernel: its moving-average window.
    learning_rate, batch_size, train_steps: Adam settings of every network.

  Examples:
    >>> import tempfile
    >>> path = generate_csv(os.path.join(tempfile.mkdtemp(), "ett.csv"), "h")
    >>> ts = ett(path, variant="h", window_stride=24)
    >>> ts.tasks, ts.train.inputs.shape, ts.test.labels.shape
    (('HUFL', 'HULL', 'MUFL', 'MULL', 'LUFL', 'LULL', 'OT'), (356, 96, 7), (2857, 24, 7))
  """
  arguments = dict(variant=variant, input_len=input_len, pred_len=pred_len,
                   window_stride=window_stride, width=width, kernel=kernel,
                   learning_rate=learning_rate, batch_size=batch_size, train_steps=train_steps)
  stride = default_stride(variant) if window_stride is None else window_stride
  for name, value in (("width", width), ("kernel", kernel), ("batch_size", batch_size),
                      ("train_steps", train_steps)):
    if value < 1:
      raise UserError(f"--{name} must be >= 1, got {value}")
  rows_per_hour(variant)
  dates, values = read_csv(path)
  check_spacing(path, dates, variant)
  try:
    data = splits(values, variant, input_len, pred_len, window_stride=stride)
  except UserError as e:
    raise UserError(f"{path}: {e}") from None
  if batch_size > len(data.train.inputs):
    raise UserError(f"{path}: {len(data.train.inputs)} training windows (window_stride={stride}) "
                    f"are fewer than the batch size {batch_size}")
  split = lambda w: data_lib.ArrayDataset(w.inputs, w.labels)
  taskset = tasks_lib.TaskSet(
      name="ett",
      tasks=COLUMNS,
      model=models.MultiTaskModel(DecompositionTrunk(kernel=kernel, widths=(width,)),
                                  models.DenseHead(pred_len), num_tasks=len(COLUMNS)),
      sample_losses=sequence_squared_error,
      sample_metrics=sequence_absolute_error,
      train=split(data.train),
      val=split(data.val),
      test=split(data.test),
      optimizer=optax.adam(learning_rate),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="mae",
      description=(f"ETT{variant} {os.path.basename(path)}, 7 channels, {input_len} -> "
                   f"{pred_len} rows, {len(data.train.inputs)} training windows "
                   f"(stride {stride})"),
  )
  definition = identity.definition_of(ett, (path,), arguments, ignore=("path",))
  definition["arguments"]["data_sha256"] = file_digest(path)
  return taskset.with_definition(definition)
