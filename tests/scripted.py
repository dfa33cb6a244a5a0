"""A TrainRun whose eval accuracies are scripted (the real evaluation still runs), so stopping rules, the peak
folder and rollbacks are tested on known curves (tests/test_train.py, tests/test_remedies.py)."""

from __future__ import annotations


def scripted_run(script: dict[int, float], n: int = 40):
    """A :class:`harness.train.runner.TrainRun` subclass whose eval at step s reports ``script[s]`` on n questions."""
    from harness.train.runner import TrainRun

    class Scripted(TrainRun):
        def evaluate(self, model, step):
            return {**super().evaluate(model, step), "accuracy": script[step], "n": n}

    return Scripted
