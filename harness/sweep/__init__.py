"""Optuna sweeps: ablation files (what is varied) and the trial runner."""
