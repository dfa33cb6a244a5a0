"""Seeds of the K samples of a question (``harness run --samples K``, ``harness train --eval-samples K``).

Sample 0 is played with the run's own seed, so a one-sample run is the run it always was, episode for
episode. Sample ``s`` > 0 is played with :func:`sample_seed` ``(seed, s)``: the search tool's seed (the
search noise is drawn from ``(seed, question, call index)``, :func:`harness.data.search.noise_rng`), a
task environment's per-episode values (apollo3_micro's code words) and a sampling backend's stream
(:meth:`harness.policies.hf.HFPolicy.reseed`) all take it, so the K samples of a question draw different
noise, values and tokens, and a resumed run replays each sample exactly.
"""

from __future__ import annotations

import hashlib


def sample_seed(seed: int, sample: int) -> int:
    """The seed sample ``sample`` of a run with ``seed`` is played with (``seed`` itself for sample 0).

    >>> sample_seed(0, 0), sample_seed(7, 0)
    (0, 7)
    >>> sample_seed(0, 1) == sample_seed(0, 1) != sample_seed(0, 2) != sample_seed(1, 1)
    True
    """
    if sample == 0:
        return seed
    digest = hashlib.sha256(f"sample|{seed}|{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
