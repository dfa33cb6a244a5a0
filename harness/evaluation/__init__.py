"""``harness run`` (policies x noise levels -> run directory) and the lm-eval task hooks."""
