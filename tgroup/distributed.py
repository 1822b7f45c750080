"""One run over several processes (hosts) with JAX's distributed runtime (docs/accelerators.md).

Every process runs the same program on the same inputs: JAX's SPMD model. After
:func:`initialize`, ``jax.devices()`` lists every process's devices, so a
:mod:`tgroup.mesh` mesh spans them all; each process places only its share of a
batch (:func:`tgroup.mesh.put_batch`) and every result a run fetches to the host
is replicated, so every process holds the same numbers and takes the same
decisions. Only process 0 writes files (:func:`writes_files`); the others read
what it wrote (a shared file system, as on a SLURM cluster or a TPU slice with a
shared disk, is what resuming a killed job needs).
"""
from __future__ import annotations

import dataclasses
import socket
import sys
import time

from tgroup.errors import UserError


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """JAX's own arguments of :func:`jax.distributed.initialize`; None: JAX detects them.

  On Cloud TPU VMs, SLURM and other schedulers JAX reads the coordinator, the
  number of processes and this process's id from the environment they set.

  Examples:
    >>> DistributedConfig("10.0.0.1:1234", 2, 1).check()
    >>> DistributedConfig("10.0.0.1:1234", 2, 2).check()
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: --process_id=2 is out of range for --num_processes=2 (0 to 1)
  """
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  initialization_timeout: int = 300

  def check(self) -> None:
    """A one-line UserError for what can be told wrong before contacting anyone."""
    if self.num_processes is not None and self.num_processes < 1:
      raise UserError(f"--num_processes must be >= 1, got {self.num_processes}")
    if self.process_id is not None:
      if self.num_processes is None:
        raise UserError("--process_id needs --num_processes")
      if not 0 <= self.process_id < self.num_processes:
        raise UserError(f"--process_id={self.process_id} is out of range for "
                        f"--num_processes={self.num_processes} (0 to {self.num_processes - 1})")
    if self.coordinator_address is not None:
      host, sep, port = self.coordinator_address.rpartition(":")
      if not sep or not host or not port.isdigit():
        raise UserError(f"--coordinator_address={self.coordinator_address} is not HOST:PORT")
    if self.initialization_timeout < 1:
      raise UserError(f"--initialization_timeout must be >= 1 s, got "
                      f"{self.initialization_timeout}")


def initialize(config: DistributedConfig) -> None:
  """Joins the distributed run (blocks until every process has joined, or times out).

  CPU devices communicate through gloo (JAX's TCP collectives for CPUs); GPUs
  and TPUs through their own interconnect. A missing coordinator, which JAX
  could not find in the environment either, is a UserError.
  """
  config.check()
  if config.coordinator_address is not None and config.process_id:
    # JAX aborts the process (no exception) when the coordinator never answers;
    # waiting for its port first turns that into a one-line error.
    _wait_for(config.coordinator_address, config.initialization_timeout)
  import jax  # pylint: disable=g-import-not-at-top  (tools without JAX never get here)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(config.coordinator_address, config.num_processes,
                               config.process_id,
                               initialization_timeout=config.initialization_timeout)
  except ValueError as e:  # what JAX could not find in flags nor environment
    raise UserError(f"--distributed: {e} Pass --coordinator_address=HOST:PORT, "
                    "--num_processes and --process_id, or run under a scheduler JAX "
                    "detects (Cloud TPU, SLURM, ...)") from None
  except Exception as e:  # pylint: disable=broad-except  (the coordinator never answered)
    raise UserError(f"--distributed: could not join the run at "
                    f"{config.coordinator_address or 'the detected coordinator'} within "
                    f"{config.initialization_timeout} s ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _wait_for(address: str, timeout_s: int) -> None:
  """Returns once something listens at ``address`` (HOST:PORT); UserError after ``timeout_s``."""
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise UserError(f"--distributed: nothing answered at --coordinator_address={address} "
                        f"within {timeout_s} s ({e.strerror or e}); start process 0 there, or "
                        "raise --initialization_timeout") from None
      time.sleep(0.5)


def _jax():
  """JAX if this process imported it, else None (file tools never import JAX)."""
  return sys.modules.get("jax")


def process_index() -> int:
  """This process's index in a distributed run; 0 without one."""
  jax = _jax()
  if jax is None or not jax.distributed.is_initialized():
    return 0
  return jax.process_index()


def writes_files() -> bool:
  """Whether this process writes results: process 0 of a distributed run, or any other run."""
  return process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process of a distributed run gets here (nothing without one)."""
  jax = _jax()
  if jax is not None and jax.distributed.is_initialized() and jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
