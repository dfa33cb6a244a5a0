"""The ``harness`` command line (heavy imports happen inside commands).

``app.py`` holds the root app and most commands (``run``, ``search``, ``validate``, ``analyze``, ``report``,
``cells``, ``sweep`` and the ``data`` and ``bench`` groups); ``train.py``, ``lmeval.py`` and ``micro.py``
hold one command or group each, registered by ``app.py``; ``options.py`` turns a config model into a
command's options; ``validate.py`` is what ``harness validate`` checks; ``reports.py`` writes the reports
once a run returns.
"""

from harness.cli.app import app, main

__all__ = ["app", "main"]
