"""Benchmarks shipped with the harness (``harness bench``): measured speeds as per-unit costs and ratios."""
