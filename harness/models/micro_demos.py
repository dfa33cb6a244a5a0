"""Scripted demonstrations for the micro policy's warm start: search, read, answer, sometimes retry.

:class:`Demonstrator` plays the micro task through the real :class:`~harness.environment.micro.MicroEnvironment`
(real BM25, real drop_gold noise), so every demonstration's ``<information>`` blocks are exactly what
the policy will see. Its behaviour is a mix, so that GRPO has a behaviour to shift:

* first turn: search the question's four words, by reference (``#1 #2 #3 #4``);
* the value is shown (marked ``«code»``): answer it, by reference (``«»``);
* the value is not shown: search again with probability ``p_retry`` (a drop-one-word reformulation,
  ``#2 #3 #4``, alternating with the full query), otherwise answer anyway (``«»`` then cites no value,
  a wrong answer); after ``max_searches`` searches it always answers.

With ``p_retry`` below one half, greedy decoding of the warm-started policy answers anyway after a
miss, while sampling retries now and then.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from harness.environment.env import Generation
from harness.environment.micro import MARKED_REF, N_KEYWORDS
from harness.episode.record import Episode

_MARKED = re.compile(r"«([a-z]+)»")
_KEYS = re.compile(r"goes with: (.*)\?$")
#: The first query (every word of the question, by reference) and the reformulation a retry uses.
FULL_QUERY = " ".join(f"#{i + 1}" for i in range(N_KEYWORDS))
DROP_ONE = " ".join(f"#{i + 1}" for i in range(1, N_KEYWORDS))

THINK_FIRST = "search the words"
THINK_FOUND = "the value is marked"
THINK_RETRY = "no value shown, search again"
THINK_GUESS = "no value shown, answer anyway"


def _say(think: str, tag: str, body: str) -> Generation:
    # A space before a query makes its first word tokenise as it does in the question (" word").
    pad = " " if tag == "search" else ""
    text = f"<think>{think}</think>\n<{tag}>{pad}{body}</{tag}>"
    return Generation(text, len(text.split()))


def keywords_of(question: str) -> tuple[str, ...]:
    """The question's words (what ``#1``..``#4`` refer to).

    >>> keywords_of("What value goes with: oxygen tank pressure reading?")
    ('oxygen', 'tank', 'pressure', 'reading')
    """
    m = _KEYS.search(question)
    return tuple(m.group(1).split()) if m else tuple(question.split())


class Demonstrator:
    """A scripted micro-task agent whose random choices are seeded per (seed, question, episode, turn)."""

    def __init__(self, p_retry: float = 0.3, max_searches: int = 4, seed: int = 0):
        self.name = "micro-demo"
        self.p_retry = p_retry
        self.max_searches = max_searches
        self.seed = seed

    def _rng(self, ep: Episode) -> np.random.Generator:
        key = f"demo|{self.seed}|{ep.question.qid}|{ep.noise.get('episode', 0)}|{ep.noise.get('seed', 0)}|{len(ep.turns)}"
        return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop=()) -> list[Generation]:
        return [self.act(ep) for ep in episodes]

    def act(self, ep: Episode) -> Generation:
        n = ep.n_searches
        if n == 0:
            return _say(THINK_FIRST, "search", FULL_QUERY)
        if _MARKED.search(ep.messages[-1]["content"]):
            return _say(THINK_FOUND, "answer", MARKED_REF)
        if n < self.max_searches and self._rng(ep).random() < self.p_retry:
            return _say(THINK_RETRY, "search", DROP_ONE if n % 2 == 1 else FULL_QUERY)
        return _say(THINK_GUESS, "answer", MARKED_REF)
