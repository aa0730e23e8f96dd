"""The one query core every executor runs: tasks, readers, outputs, watermarks, restart, release, progress.

`inline`, `drizzle` and `bsp` are schedulers over these modules: they
decide where and when a task runs, and the core decides what it does, so a
rule at the level of a micro-batch lives in one module here.
"""
