"""Benchmarks: each is a function returning a :class:`tgroup.tasks.TaskSet`."""
