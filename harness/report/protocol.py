"""What may be compared: the protocol fields that differ between runs, said before any comparison of them.

Every run records its protocol (:class:`harness.core.record.Comparability`: task and data hashes, split and
its lines, retriever and embedding model, k, result format and prompt, noise, seed scheme, budgets, judge,
reward semantics and weights, samples and temperature). :func:`protocol_differences` lists every field on
which the runs of a page disagree, one line each; ``harness report`` prints them before writing the page,
and the page shows them first and marks its comparisons as crossing protocols. The seed and the reward
weights are recorded but not listed (:data:`VARIED`: what seeds and ablations vary on purpose).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from harness.core.record import Comparability
from harness.report.page import esc, note

#: How long a value may print before it is shortened (a list to its length and first values).
SHOWN = 60
#: Fields runs differ in by design (seeds of one arm, the reward weights an ablation varies): recorded, not
#: a protocol difference. The seed *scheme* is compared.
VARIED = ("seed", "reward_weights")


def _short(value: Any) -> str:
    """A protocol value as one line reads it.

    >>> _short([0, 1, 2]), _short("a" * 70)[:12], _short(None), _short(0.5)
    ('[0, 1, 2]', 'aaaaaaaaaaaa', '—', '0.5')
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) <= SHOWN:
        return text
    if isinstance(value, list):
        return f"{len(value)} values starting {json.dumps(value[:4])[:-1]}, …]"
    return text[:SHOWN - 1] + "…"


def protocol_differences(runs: Sequence[tuple[str, Comparability | None]]) -> list[str]:
    """One line per protocol field that is not the same in every run (``field: label value · label value``),
    and one per run that has no record of its protocol; empty when the runs share one.

    >>> base = dict(task="t", split="test", retriever="bm25", k=3, result_format="r", prompt_sha256="p",
    ...             seed_scheme="v1", max_turns=20, max_new_tokens=512, max_episode_tokens=8192,
    ...             stop_after_action=True, judge="default", reward_semantics="rezero")
    >>> protocol_differences([("A", Comparability(**base)), ("B", Comparability(**{**base, "k": 5}))])
    ['k: A 3 · B 5']
    >>> protocol_differences([("A", Comparability(**base)), ("old", None)])
    ['old: no protocol record (written before runs recorded one): comparable only by hand']
    """
    known = [(label, c) for label, c in runs if c is not None]
    lines = []
    if len(known) > 1:
        dumps = [(label, c.model_dump()) for label, c in known]
        for name in (f for f in Comparability.model_fields if f not in VARIED):
            values = [d[name] for _, d in dumps]
            if any(v != values[0] for v in values[1:]):
                lines.append(f"{name}: " + " · ".join(f"{label} {_short(d[name])}" for label, d in dumps))
    if len(runs) > 1:
        lines += [f"{label}: no protocol record (written before runs recorded one): comparable only by hand"
                  for label, c in runs if c is None]
    return lines


def protocol_html(lines: Sequence[str], what: str = "runs") -> list[str]:
    """The page's statement of the protocol: that the runs share one, or each difference (a problem note)."""
    if not lines:
        return [note(f"The {what} share one protocol (task, data, split, retriever, k, prompt, noise, seeds, "
                     "budgets, judge, rewards, samples): their numbers may be compared.")]
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return [note(f"These {what} were measured under different protocols; every comparison below crosses "
                 "them, and a difference between them may come from the protocol, not from what was varied:",
                 "problem"), f"<ul class='protocol'>{items}</ul>"]
