"""The environment that plays episodes (policy turns, searches, judge); a task's own environment
subclasses it in the task's hooks.py (the ``environment`` hook, docs/tasks.md)."""
