"""Scripted reference policies: no model, deterministic, for context rows and exact metric tests.

``closed-book``   answers at once, without searching (it has no memory, so it says it does not know).
``one-search``    searches the question once and answers with the span the extractive reader picks.
``oracle-retry``  searches; while the gold passage has not been shown (it peeks at the gold data,
                  hence "oracle") and turns remain, searches again, alternating the question and its
                  keywords (each search re-draws the noise); then answers like one-search from the
                  results that showed the gold passage (or the last results). Without noise it
                  stops after both formulations missed, since repeating them cannot help.
"""

from __future__ import annotations

import re

from harness.environment.env import Generation
from harness.episode.record import Episode
from harness.policies.reader import extract_answer
from harness.scoring.normalize import STOPWORDS

SCRIPTED = ("closed-book", "one-search", "oracle-retry")

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-:]*")


def keywords(question: str) -> str:
    """The question without stopwords: a second, differently phrased query.

    >>> keywords("What was the pressure in oxygen tank 2 at 55:54?")
    'pressure oxygen tank 2 55:54'
    """
    return " ".join(w.rstrip(".") for w in _WORD.findall(question) if w.lower() not in STOPWORDS)


def _say(think: str, tag: str, body: str) -> Generation:
    text = f"<think>{think}</think>\n<{tag}>{body}</{tag}>"
    return Generation(text, len(text.split()))


class ScriptedPolicy:
    def __init__(self, name: str, max_turns: int = 20):
        if name not in SCRIPTED:
            from harness.core.errors import ConfigError

            raise ConfigError(f"unknown scripted policy {name!r}; valid: {', '.join(SCRIPTED)}")
        self.name = name
        self.max_turns = max_turns

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop=()) -> list[Generation]:
        return [self._act(ep) for ep in episodes]

    def _answer_from(self, ep: Episode, turn_index: int | None) -> Generation:
        searches = ep.searches
        if turn_index is None or not searches:
            passages: list[str] = []
        else:
            passages = [r.text for r in searches[turn_index].search.results]
        span = extract_answer(ep.question.question, passages)
        if not span:
            return _say("The passages do not say; I cannot find the answer.", "answer", "I don't know")
        return _say("The passages contain the answer.", "answer", span)

    def _act(self, ep: Episode) -> Generation:
        q = ep.question.question
        n = ep.n_searches
        if self.name == "closed-book":
            return _say("I will answer from what I know, without searching.", "answer", "I don't know")
        if self.name == "one-search":
            if n == 0:
                return _say("I should look this up.", "search", q)
            return self._answer_from(ep, n - 1)
        # oracle-retry
        if n == 0:
            return _say("I should look this up.", "search", q)
        seen = ep.first_gold_search
        if seen is not None:
            return self._answer_from(ep, seen)
        if len(ep.turns) + 1 >= self.max_turns:  # the last turn left: answer with what we have
            return self._answer_from(ep, n - 1)
        if n >= 2 and not ep.noise.get("level"):  # without noise, repeating a query cannot change its results
            return self._answer_from(ep, n - 1)
        query = keywords(q) if n % 2 == 1 else q
        return _say("The results do not contain the answer; I will search again.", "search", query or q)


def load(model: str, max_turns: int = 20, **_: object) -> ScriptedPolicy:
    return ScriptedPolicy(model, max_turns=max_turns)
