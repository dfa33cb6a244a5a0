"""The environment that plays episodes (policy turns, searches, judge) and task-specific environments (apollo3_micro)."""
