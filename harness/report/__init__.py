"""Pages and figures on top of finished runs: the run report, the study report, the cells page, the
episode browser and the terminal summary. Called by the command line after a run returns, never by
the code that produces runs (``EvalRun``, ``TrainRun``, sweeps)."""
