"""The ``harness`` command line: one module per command group (heavy imports happen inside commands)."""

from harness.cli.app import app, main

__all__ = ["app", "main"]
