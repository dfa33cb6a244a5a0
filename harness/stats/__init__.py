"""Statistics of runs, below everything that decides or draws: curves (peak, collapse, indicators),
noise-aware detectors, intervals, paired tests, the ranking of trials and synthetic curves.

Training and sweeps decide with these (the online detector stops a run, the ranking orders trials);
the reports in :mod:`harness.report` print them. Nothing here draws, writes HTML or imports a model.
"""
