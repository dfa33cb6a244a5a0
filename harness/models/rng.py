"""Scoped random and determinism state: seed or make torch deterministic for one block, then put it back.

Building a model (``micro``, ``tiny``, a warm start) needs a seeded, single-threaded, deterministic
torch; a backend that samples needs the global torch RNG seeded from its own stream (``generate`` in
transformers draws from it and takes no generator). Both used to leave that state set for the rest of
the process, which can be a whole ``harness run --model micro``. These context managers scope it:

* :func:`preserved_rng` saves Python's ``random``, NumPy's global and torch's CPU RNG states (and the
  CUDA states when CUDA is initialised) and restores them on exit, also on an exception;
* :func:`seeded` is :func:`preserved_rng` plus ``torch.manual_seed(seed)`` inside;
* :func:`deterministic` is :func:`seeded` plus a fixed thread count and
  ``torch.use_deterministic_algorithms(True)``, both restored on exit.

>>> import torch
>>> before = torch.get_rng_state()
>>> with seeded(0):
...     a = torch.rand(2)
>>> with seeded(0):
...     b = torch.rand(2)
>>> bool(torch.equal(a, b)), bool(torch.equal(torch.get_rng_state(), before))
(True, True)
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the global RNG states (``random``, NumPy, torch CPU, initialised CUDA) on exit."""
    import torch

    py_state, np_state, cpu_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``torch.manual_seed(seed)`` for the block only (the previous RNG states come back on exit)."""
    import torch

    with preserved_rng():
        torch.manual_seed(seed)
        yield


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seeded, ``threads`` intra-op threads and deterministic algorithms for the block; all restored on exit.

    This is what makes a CPU build rebuild the same bytes (``harness micro build``).
    """
    import torch

    n_threads = torch.get_num_threads()
    det, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with seeded(seed):
        try:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True)
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=warn_only)
            torch.set_num_threads(n_threads)
