"""Parse one assistant turn of the tag protocol into an action, never raising.

A well-formed turn is ``<think>…</think>`` followed by exactly one of ``<search>query</search>`` or
``<answer>…</answer>``. Anything else is still parsed: the :class:`Action` says what was found and
lists the problems, so rewards can score it and the episode can end cleanly.

>>> a = parse_turn("<think>need the date</think><search>launch date Apollo 13</search>")
>>> a.kind, a.query, a.well_formed
('search', 'launch date Apollo 13', True)
>>> parse_turn("<answer>42").problems
('unclosed <answer>',)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Tags:
    think: str = "think"
    search: str = "search"
    answer: str = "answer"
    information: str = "information"


@dataclass(frozen=True)
class Action:
    """``kind`` is ``search``, ``answer`` or ``none`` (no usable action)."""

    kind: str
    query: str | None = None
    answer: str | None = None
    has_think: bool = False
    think_first: bool = False
    n_search: int = 0
    n_answer: int = 0
    problems: tuple[str, ...] = ()

    @property
    def well_formed(self) -> bool:
        return not self.problems

    @classmethod
    def from_dict(cls, d: dict) -> "Action":
        return cls(d["kind"], d.get("query"), d.get("answer"), d.get("has_think", False), d.get("think_first", False),
                   d.get("n_search", 0), d.get("n_answer", 0), tuple(d.get("problems", ())))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "query": self.query, "answer": self.answer, "has_think": self.has_think,
                "think_first": self.think_first, "n_search": self.n_search, "n_answer": self.n_answer, "problems": list(self.problems)}


@lru_cache(maxsize=16)
def _patterns(tags: Tags) -> dict[str, re.Pattern]:
    def block(t: str) -> re.Pattern:
        return re.compile(rf"<{t}>(.*?)</{t}>", re.S)

    return {
        "think": block(tags.think), "search": block(tags.search), "answer": block(tags.answer),
        "open_search": re.compile(rf"<{tags.search}>"), "open_answer": re.compile(rf"<{tags.answer}>"),
        "open_think": re.compile(rf"<{tags.think}>"),
        "info": re.compile(rf"<{tags.information}>", re.S),
    }


def parse_turn(text: str, tags: Tags = Tags()) -> Action:
    """Parse an assistant message. The first complete action wins when several are present."""
    text = text or ""
    pat = _patterns(tags)
    problems: list[str] = []
    thinks = list(pat["think"].finditer(text))
    searches = list(pat["search"].finditer(text))
    answers = list(pat["answer"].finditer(text))
    for name in ("search", "answer", "think"):
        opened = len(pat[f"open_{name}"].findall(text))
        closed = {"search": len(searches), "answer": len(answers), "think": len(thinks)}[name]
        if opened > closed:
            problems.append(f"unclosed <{getattr(tags, name)}>")
    if pat["info"].search(text):
        problems.append(f"model wrote its own <{tags.information}>")
    actions = sorted(searches + answers, key=lambda m: m.start())
    first = actions[0] if actions else None
    has_think = bool(thinks)
    think_first = bool(thinks) and (first is None or thinks[0].end() <= first.start())
    if first is not None and not think_first:
        problems.append(f"no <{tags.think}> before the action")
    if len(searches) > 1:
        problems.append(f"{len(searches)} searches in one turn")
    if searches and answers:
        problems.append("search and answer in one turn")
    if len(answers) > 1:
        problems.append(f"{len(answers)} answers in one turn")
    if first is None:
        if not any(p.startswith("unclosed") for p in problems):
            problems.append("no action")
        return Action("none", has_think=has_think, think_first=think_first, n_search=len(searches),
                      n_answer=len(answers), problems=tuple(problems))
    body = first.group(1).strip()
    if first in searches:
        if not body:
            problems.append("empty query")
            return Action("none", has_think=has_think, think_first=think_first, n_search=len(searches),
                          n_answer=len(answers), problems=tuple(problems))
        return Action("search", query=body, has_think=has_think, think_first=think_first,
                      n_search=len(searches), n_answer=len(answers), problems=tuple(problems))
    if not body:
        problems.append("empty answer")
    return Action("answer", answer=body, has_think=has_think, think_first=think_first,
                  n_search=len(searches), n_answer=len(answers), problems=tuple(problems))


def truncate_after_action(text: str, tags: Tags = Tags()) -> str:
    """Cut a generation right after its first closing ``</search>`` or ``</answer>`` tag.

    Backends without stop strings generate past the action; the protocol ends a turn there.

    >>> truncate_after_action("<think>x</think><search>q</search> and more")
    '<think>x</think><search>q</search>'
    """
    ends = [i + len(t) for t in (f"</{tags.search}>", f"</{tags.answer}>") if (i := text.find(t)) >= 0]
    return text[: min(ends)] if ends else text
