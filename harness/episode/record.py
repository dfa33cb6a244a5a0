"""Episodes: the record of one question answered (or not) through the search protocol.

An :class:`Episode` keeps every message, each turn's parsed action, the search results with their
chunk ids and noise events, whether the gold passage was shown, and why the episode ended. Rewards
and metrics are pure functions of it; ``to_dict`` is the ``samples.jsonl`` row (with ``sample``, the index
of a question's sample, when it is not 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.data.loading import Question
from harness.data.search import SearchResult, ShownResult
from harness.episode.protocol import Action, Tags, parse_turn


def _turn_from_dict(d: dict[str, Any]) -> "Turn":
    s = d.get("search")
    return Turn(d["text"], d["n_tokens"], Action.from_dict(d["action"]), SearchResult.from_dict(s) if s else None,
                d.get("gold_seen", False))

def _text(message: dict) -> str:
    c = message.get("content")
    return c if isinstance(c, str) else ""


#: Why an episode ended.
END_REASONS = ("answer", "no_action", "max_turns", "token_budget", "error")

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Collapse whitespace so passage containment is robust to line breaks."""
    return _WS.sub(" ", text).strip()


@dataclass
class Turn:
    text: str
    n_tokens: int
    action: Action
    search: SearchResult | None = None
    gold_seen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "n_tokens": self.n_tokens, "action": self.action.to_dict(),
                "search": self.search.to_dict() if self.search else None, "gold_seen": self.gold_seen}


@dataclass
class Episode:
    question: Question
    messages: list[dict[str, str]]
    turns: list[Turn] = field(default_factory=list)
    end_reason: str | None = None
    error: str | None = None
    judge: dict[str, Any] | None = None
    rewards: dict[str, float] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    #: Token usage a served backend reported, summed over the episode's turns (empty for local backends).
    usage: dict[str, int] = field(default_factory=dict)
    #: Which of the question's K samples this is (``harness run --samples K``); 0 for a one-sample run.
    sample: int = 0

    def add_usage(self, usage: dict[str, int]) -> None:
        """Add one turn's usage (``prompt_tokens``, ``completion_tokens``, ...) to the episode's.

        >>> ep = Episode(Question("q", 0, "?", "a", (), ()), [])
        >>> ep.add_usage({"prompt_tokens": 5, "completion_tokens": 2}); ep.add_usage({"prompt_tokens": 7})
        >>> ep.usage
        {'prompt_tokens': 12, 'completion_tokens': 2}
        """
        for k, v in usage.items():
            self.usage[k] = self.usage.get(k, 0) + int(v)

    # ---- state
    @property
    def done(self) -> bool:
        return self.end_reason is not None

    @property
    def n_generated_tokens(self) -> int:
        return sum(t.n_tokens for t in self.turns)

    # ---- derived facts used by rewards and metrics
    @property
    def answer(self) -> str | None:
        """The final answer, only when the episode ended on an answer turn."""
        if self.end_reason == "answer" and self.turns and self.turns[-1].action.kind == "answer":
            return self.turns[-1].action.answer
        return None

    @property
    def searches(self) -> list[Turn]:
        return [t for t in self.turns if t.action.kind == "search"]

    @property
    def n_searches(self) -> int:
        return len(self.searches)

    @property
    def queries(self) -> list[str]:
        return [t.action.query or "" for t in self.searches]

    @property
    def first_gold_search(self) -> int | None:
        """0-based index (among searches) of the first search whose results showed the gold passage."""
        for i, t in enumerate(self.searches):
            if t.gold_seen:
                return i
        return None

    @property
    def gold_seen(self) -> bool:
        return self.first_gold_search is not None

    @property
    def correct(self) -> bool:
        return bool(self.judge and self.judge.get("correct")) and self.answer is not None

    @classmethod
    def from_messages(cls, messages: list[dict[str, str]], question: Question, *, tags: Tags = Tags(),
                      stop_after_action: bool = False) -> "Episode":
        """The episode a conversation records (e.g. a ReZero chat state), as the environment plays it.

        Each assistant message becomes a turn parsed under the protocol; a search turn's results are
        the ``<information>`` message that follows it (whose text marks the gold passage as seen or
        not). The episode ends on the last turn's action: ``answer``, ``no_action``, or ``max_turns``
        when it was still searching. The answer is not judged here (the judge is a higher layer).

        >>> q = Question("q1", 0, "When?", "noon", ("It was at noon.",), ("1",))
        >>> ep = Episode.from_messages([
        ...     {"role": "assistant", "content": "<think>look</think><search>time</search>"},
        ...     {"role": "user", "content": "<information>It was at noon.</information>"},
        ...     {"role": "assistant", "content": "<think>found</think><answer>noon</answer>"}], q)
        >>> ep.n_searches, ep.gold_seen, ep.answer, ep.end_reason
        (1, True, 'noon', 'answer')
        """
        paras = question.supporting_paragraphs
        gold = squash(paras[-1]) if paras and paras[-1] else None
        ep = cls(question=question, messages=[dict(m) for m in messages])
        for i, m in enumerate(messages):
            if m.get("role") != "assistant":
                continue
            text = _text(m)
            action = parse_turn(text, tags, stop_after_action=stop_after_action)
            turn = Turn(text=text, n_tokens=len(text.split()), action=action)
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            if action.kind == "search" and nxt is not None and nxt.get("role") in ("user", "ipython"):
                shown = _text(nxt)
                turn.search = SearchResult(action.query or "", (ShownResult("", shown, 0, 0.0),))
                turn.gold_seen = gold is not None and gold in squash(shown)
            ep.turns.append(turn)
        last = ep.turns[-1].action.kind if ep.turns else "none"
        ep.end_reason = {"answer": "answer", "search": "max_turns"}.get(last, "no_action")
        return ep

    @classmethod
    def from_dict(cls, d: dict[str, Any], question: Question) -> "Episode":
        """Rebuild an episode from its ``samples.jsonl`` row (used to resume a run)."""
        return cls(question=question, messages=d["messages"], turns=[_turn_from_dict(t) for t in d["turns"]],
                   end_reason=d["end_reason"], error=d.get("error"), judge=d.get("judge"),
                   rewards=d.get("rewards", {}), noise=d.get("noise", {}), usage=d.get("usage", {}),
                   sample=int(d.get("sample", 0)))

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        return {
            "qid": q.qid, "line": q.line, "question": q.question, "gold_answer": q.answer,
            "gold_chunk_ids": list(q.gold_chunk_ids), "messages": self.messages,
            "turns": [t.to_dict() for t in self.turns], "answer": self.answer, "correct": self.correct,
            "end_reason": self.end_reason, "error": self.error, "n_searches": self.n_searches,
            "queries": self.queries, "gold_seen": self.gold_seen, "first_gold_search": self.first_gold_search,
            "n_generated_tokens": self.n_generated_tokens, "judge": self.judge, "rewards": self.rewards,
            "noise": self.noise, **({"usage": self.usage} if self.usage else {}),
            # the sample index only where there are several: a one-sample run's rows are as they always were
            **({"sample": self.sample} if self.sample else {}),
        }
