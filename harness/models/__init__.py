"""Models the harness builds itself from a config (tiny, micro) and what a ``--model`` name resolves to."""
