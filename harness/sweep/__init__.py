"""Optuna sweeps: ablation files (what is varied: ablation.py), the study (study.py), one trial (trial.py, child.py)
and the workers (runner.py)."""
