"""Errors a user can cause.

Launchers catch :class:`UserError`, print its message on one line and exit with
status 2 (docs/contract.md); anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the user's input: a flag, a file, a constraint, a task name."""


class InfeasibleError(UserError):
  """No grouping satisfies the constraints; the message names the culprits."""


class NonFiniteLossError(UserError):
  """Training produced a non-finite loss; the message names the task and step."""
