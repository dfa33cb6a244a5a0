"""Hand-written episodes for reward and metric tests (no retriever, no model), shaped as the environment writes them."""

from __future__ import annotations

from harness.data.loading import Question
from harness.data.search import SearchResult, ShownResult
from harness.episode.protocol import parse_turn
from harness.episode.record import Episode, Turn

GOLD_PARAGRAPH = "The oxygen tank 2 pressure dropped to zero at 55:54:53."
Q = Question(qid="q0001", line=1, question="When did the tank 2 pressure drop?", answer="55:54:53",
             supporting_paragraphs=(GOLD_PARAGRAPH,), gold_chunk_ids=("7",))


def episode(turns: list[str | tuple[str, bool]], correct: bool | None = None, end: str | None = None) -> Episode:
    """``turns``: assistant texts; a search turn is ``(text, gold_shown)``. End reason from the last turn."""
    ep = Episode(question=Q, messages=[{"role": "user", "content": Q.question}])
    for item in turns:
        text, shown = item if isinstance(item, tuple) else (item, False)
        action = parse_turn(text)
        t = Turn(text=text, n_tokens=len(text.split()), action=action)
        ep.turns.append(t)
        ep.messages.append({"role": "assistant", "content": text})
        if action.kind == "search":  # the environment's reply, as Environment.step writes it
            body = GOLD_PARAGRAPH if shown else "Unrelated passage about the lunar module."
            t.search = SearchResult(action.query or "", (ShownResult("7" if shown else "9", body, 0, 1.0),))
            t.gold_seen = shown
            ep.messages.append({"role": "user", "content": f"<information>\n[1] {body}\n</information>"})
    last = ep.turns[-1].action.kind if ep.turns else "none"
    ep.end_reason = end or {"answer": "answer", "none": "no_action"}.get(last, "max_turns")
    if correct is not None:
        ep.judge = {"correct": correct, "rule": "test"}
    return ep


def S(query: str, gold: bool = False, think: str = "I should search") -> tuple[str, bool]:
    return (f"<think>{think}</think><search>{query}</search>", gold)


def A(answer: str, think: str = "found it") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"
