"""What a launcher's gains.json holds under the default settings, shared by the launcher tests."""


def off_diagonal(m: int, steps: int) -> list[list[int]]:
  """Counts of the default (marginal) principled gains: no diagonal entry is collected."""
  return [[0 if i == j else steps for j in range(m)] for i in range(m)]
