"""The ``apollo3_micro`` task's code: Apollo corpus, real BM25 and noise, answers that only a search can find.

Reached from ``task.yaml`` beside this file through four hooks (docs/tasks.md), imported by path:

``process_data``  :func:`process_data` replaces the paper's 318 questions with *facts* derived
                  from the chunks: a sentence that states a number, asked for by four of its
                  rarest words ("What value goes with: oxygen tank pressure reading?"). A fact is kept
                  only when BM25 ranks its chunk in the top ``k`` for the four words and for every
                  drop-one-word reformulation, so at noise 0 the value is always reachable.
``environment``   :class:`MicroEnvironment` draws, for every episode, the fact's value afresh from a
                  pool of :data:`CODE_POOL` code words (seeded by run seed, question and episode
                  count), and shows it, marked ``«code»`` in place of the number, wherever the gold
                  chunk is shown in that episode. Results are cut to a window of about 24 words.
``demonstrator``  :class:`Demonstrator`, the scripted agent whose episodes warm-start the micro policy
                  (``harness micro build``, :mod:`harness.models.micro`).
``added_tokens``  :func:`added_tokens`: the code words, which the micro policy's tokenizer keeps whole.

So memory never helps (the value is new in every episode), a search whose results lack the gold
chunk really lacks the answer, and a retry (which re-draws the noise) is the way to recover.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from harness.data.loading import Question, TaskData
from harness.environment.env import Environment, Generation
from harness.episode.protocol import Action
from harness.episode.record import Episode

#: Words per question (the query the policy should copy) and words per shown result window.
N_KEYWORDS = 4
WINDOW_WORDS = 24
#: Held-out chunks: a chunk is in the eval (test) split when its hash bucket is below this (of 100).
EVAL_BUCKET = 20
#: Eval questions at most (one per eval chunk first, then more, in a fixed order).
N_EVAL = 100
#: Dev chunks: a chunk whose bucket is in [EVAL_BUCKET, DEV_BUCKET) gives every fact it holds to the dev
#: split (107 facts from 72 chunks, about 21% of them), so training sees none of their facts.
DEV_BUCKET = 43

_CONS, _VOWS = "bdfgklmnprstvz", "aeiou"
_SENT = re.compile(r"(?<=[.;!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NUM = re.compile(r"(?<![\w.])\d[\d,.:]*\d(?![\w])|(?<![\w.])\d(?![\w.:])")
_STOP = frozenset(
    "a an the of in on at to for from by with and or is are was were be been being what which who whom whose when "
    "where why how did does do during this that these those it its as into than then there their about also not no "
    "after before over under between while because approximately about each other only such both any some all "
    "would could should will shall may might must have has had being can per".split())


#: Candidate codes that are real words of the corpus (excluded from the pool).
_IN_CORPUS = frozenset({"jima", "zero"})


def _make_pool() -> tuple[str, ...]:
    """256 pronounceable four-letter code words starting z/x/q/j, fixed for all time (no RNG).

    None of them occurs as a word in the Apollo corpus (a test checks), so a code is never real text.
    """
    words = [c1 + v1 + c2 + v2 for c1 in "zxqj" for v1 in _VOWS for c2 in _CONS for v2 in "aiou"
             if c1 + v1 + c2 + v2 not in _IN_CORPUS]
    step = 37  # a fixed stride through the list gives varied words
    return tuple(sorted({words[(i * step) % len(words)] for i in range(256)}))


#: Values an episode can draw. The micro tokenizer holds each as one token.
CODE_POOL: tuple[str, ...] = _make_pool()


def code_for(seed: int, qid: str, nonce: int) -> str:
    """The value of question ``qid`` in its ``nonce``-th episode of a run with ``seed``.

    >>> code_for(0, "m0001", 0) == code_for(0, "m0001", 0), code_for(0, "m0001", 0) in CODE_POOL
    (True, True)
    """
    digest = hashlib.sha256(f"code|{seed}|{qid}|{nonce}".encode()).digest()
    return CODE_POOL[int.from_bytes(digest[:8], "little") % len(CODE_POOL)]


@dataclass(frozen=True)
class Fact:
    """One micro question's source: the gold chunk, the sentence and the number the code replaces."""

    chunk_id: str
    sentence: str
    number: str
    start: int
    keywords: tuple[str, ...]

    def marked(self, code: str) -> str:
        """The sentence with the number replaced by ``«code»``."""
        return f"{self.sentence[:self.start]}«{code}»{self.sentence[self.start + len(self.number):]}"


def question_text(keywords: tuple[str, ...]) -> str:
    """The micro question for a fact's words.

    >>> question_text(("oxygen", "tank", "pressure", "reading"))
    'What value goes with: oxygen tank pressure reading?'
    """
    return f"What value goes with: {' '.join(keywords)}?"


def reformulations(keywords: tuple[str, ...]) -> list[str]:
    """The first query (all keywords) then the drop-one-word variants a retry may use.

    >>> reformulations(("a1", "b2", "c3"))
    ['a1 b2 c3', 'b2 c3', 'a1 c3', 'a1 b2']
    """
    out = [" ".join(keywords)]
    for i in range(len(keywords)):
        out.append(" ".join(w for j, w in enumerate(keywords) if j != i))
    return out


def _bucket(chunk_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"micro-split|{chunk_id}".encode()).digest()[:4], "little") % 100


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(" ".join(text.split())) if s.strip()]


def _clean_sentence(s: str) -> bool:
    words = s.split()
    if not 8 <= len(words) <= 45:
        return False
    alpha = sum(bool(re.fullmatch(r"[A-Za-z][A-Za-z,;:'()-]*\.?", w)) for w in words)
    return alpha / len(words) >= 0.7 and _NUM.search(s) is not None


def derive_facts(data: TaskData, k: int, retriever=None) -> list[Fact]:
    """Every usable fact of the corpus, in corpus order (see the module docstring for the rules)."""
    from harness.data.retrieval import build_retriever

    corpus = data.corpus
    df = Counter()
    for t in corpus.texts:
        df.update({w.lower() for w in _WORD.findall(t)})
    n_docs = len(corpus)
    idf = {w: math.log((n_docs + 1) / (c + 0.5)) for w, c in df.items()}
    candidates: list[Fact] = []
    seen_sentences: set[str] = set()
    seen_keys: set[tuple[str, ...]] = set()
    for cid, text in zip(corpus.chunk_ids, corpus.texts):
        for s in _sentences(text):
            if s in seen_sentences or not _clean_sentence(s):
                continue
            seen_sentences.add(s)
            words = [w.lower() for w in _WORD.findall(s)]
            content = [w for w in dict.fromkeys(words) if len(w) >= 4 and w not in _STOP and "'" not in w]
            if len(content) < N_KEYWORDS:
                continue
            top = sorted(content, key=lambda w: (-idf.get(w, 0.0), w))[:N_KEYWORDS]
            keys = tuple(w for w in content if w in top)
            if keys in seen_keys:
                continue
            seen_keys.add(keys)
            m = _NUM.search(s)
            candidates.append(Fact(cid, s, m.group(0), m.start(), keys))
    retriever = retriever or build_retriever(data.task.retrieval, corpus, "bm25")
    queries = [q for f in candidates for q in reformulations(f.keywords)]
    hits = retriever.search(queries, k)
    per = len(reformulations(candidates[0].keywords)) if candidates else 0
    kept = []
    for i, f in enumerate(candidates):
        rows = hits[i * per:(i + 1) * per]
        gold = _gold_ids(data, f)
        if all(any(h.chunk_id in gold for h in row) for row in rows):
            kept.append(f)
    return kept


def _gold_ids(data: TaskData, f: Fact) -> tuple[str, ...]:
    return tuple(cid for cid, t in zip(data.corpus.chunk_ids, data.corpus.flat_texts) if f.sentence in t)


def process_data(data: TaskData) -> TaskData:
    """``process_data`` hook: the micro questions and their splits, each of whole held-out chunks.

    ``test`` (the first 100 questions, ``m0000``..``m0099``): 100 facts drawn from the chunks of bucket
    < :data:`EVAL_BUCKET`; ``dev``: every fact of the chunks of bucket in [:data:`EVAL_BUCKET`,
    :data:`DEV_BUCKET`); ``train``: the facts of the other chunks. The questions and their order are those
    of the task before dev existed (dev is marked among the training facts, none moved), so ``train+dev``
    is the training list the shipped micro policy was built on (:mod:`harness.models.micro` reads it).
    """
    facts = derive_facts(data, data.task.retrieval.k)
    eval_facts = [f for f in facts if _bucket(f.chunk_id) < EVAL_BUCKET]
    train_facts = [f for f in facts if _bucket(f.chunk_id) >= EVAL_BUCKET]
    rng = np.random.default_rng(0)
    eval_facts = [eval_facts[i] for i in sorted(rng.permutation(len(eval_facts))[:N_EVAL])]
    ordered = eval_facts + train_facts
    questions, by_qid = [], {}
    for line, f in enumerate(ordered):
        qid = f"m{line:04d}"
        q = Question(qid=qid, line=line, question=question_text(f.keywords), answer=f.number,
                     supporting_paragraphs=(f.sentence,), gold_chunk_ids=_gold_ids(data, f))
        questions.append(q)
        by_qid[qid] = f
    dev = [line for line, f in enumerate(ordered) if line >= len(eval_facts) and _bucket(f.chunk_id) < DEV_BUCKET]
    out = dataclasses.replace(data, questions=questions, test_lines=list(range(len(eval_facts))), dev_lines=dev)
    out.micro_facts = by_qid  # type: ignore[attr-defined]
    return out


# ----------------------------------------------------------------------------- environment


def _window(sentence: str, anchor_words: set[str], width: int = WINDOW_WORDS) -> str:
    words = sentence.split()
    if len(words) <= width:
        return sentence
    marked = [i for i, w in enumerate(words) if "«" in w]
    hits = marked or [i for i, w in enumerate(words) if w.strip("«»,.;:()").lower() in anchor_words]
    centre = hits[len(hits) // 2] if hits else 0  # a marked value is always inside the window
    lo = max(0, min(centre - width // 2, len(words) - width))
    return " ".join(words[lo:lo + width])


#: The answer that cites the value marked in the results (the latest one shown in the episode).
MARKED_REF = "«»"
_REF = re.compile(r"#(\d+)")
_MARKED = re.compile(r"«([a-z]+)»")


def expand_query(query: str, keywords: tuple[str, ...]) -> str:
    """Replace ``#n`` by the question's n-th word (invalid references are dropped).

    >>> expand_query("#2 #4 tank", ("oxygen", "surge", "pound", "valve"))
    'surge valve tank'
    """
    def word(m: re.Match) -> str:
        i = int(m.group(1)) - 1
        return keywords[i] if 0 <= i < len(keywords) else ""

    return " ".join(_REF.sub(word, query).split()) if "#" in query else query


def resolve_answer(answer: str, messages: list[dict]) -> str:
    """``«»`` becomes the latest value marked ``«code»`` in the episode's results (else stays ``«»``).

    >>> resolve_answer("«»", [{"role": "user", "content": "[1] about «zobu» pound"}])
    'zobu'
    >>> resolve_answer("«»", [{"role": "user", "content": "[1] nothing here"}])
    '«»'
    """
    if answer.strip() != MARKED_REF:
        return answer
    for m in reversed(messages):
        if m["role"] == "user":
            found = _MARKED.findall(m["content"])
            if found:
                return found[-1]
    return answer


class MicroEnvironment(Environment):
    """Environment of ``apollo3_micro``: a fresh value per episode, shown only where the gold chunk is.

    The value of a question's episode depends on the search tool's seed and on how many episodes of
    that question this environment has started (its *nonce*); :meth:`state_dict` carries those counts
    so that a resumed training run draws the same values as an uninterrupted one.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.facts: dict[str, Fact] = {}
        self._nonce: Counter = Counter()
        self.corpus = None

    @classmethod
    def from_task(cls, task, data, **kwargs) -> "MicroEnvironment":
        env = super().from_task(task, data, **kwargs)
        facts = getattr(data, "micro_facts", None)
        if facts is None:
            raise ValueError("MicroEnvironment needs data loaded with the micro task's process_data hook")
        env.facts = facts
        env.corpus = data.corpus
        return env

    def state_dict(self) -> dict:
        """Episodes started per question (the nonces of the next values drawn).

        >>> env = MicroEnvironment.__new__(MicroEnvironment)
        >>> env._nonce = Counter({"m0001": 3})
        >>> env.state_dict()
        {'nonce': {'m0001': 3}}
        """
        return {"nonce": dict(sorted(self._nonce.items()))}

    def load_state_dict(self, state: dict) -> None:
        self._nonce = Counter({str(k): int(v) for k, v in state.get("nonce", {}).items()})

    def new_episode(self, q: Question) -> Episode:
        nonce = self._nonce[q.qid]
        self._nonce[q.qid] += 1
        ep = super().new_episode(self._played(q, self.tool.seed, nonce))
        ep.noise["episode"] = nonce
        return ep

    def _played(self, q: Question, seed: int, nonce: int) -> Question:
        """``q`` with the value of its ``nonce``-th episode under ``seed``; its gold passage is the marked
        window that episode shows (what em_chunk looks for)."""
        code = code_for(seed, q.qid, nonce)
        fact = self.facts.get(q.qid)
        shown = (_window(fact.marked(code), set(fact.keywords)),) if fact is not None else q.supporting_paragraphs
        return dataclasses.replace(q, answer=code, supporting_paragraphs=shown)

    def episode_question(self, q: Question, noise: dict) -> Question:
        """The question of a recorded episode: its value re-drawn from the seed and episode count it recorded."""
        return self._played(q, int(noise.get("seed", self.tool.seed)), int(noise.get("episode", 0)))

    def resolve_action(self, ep: Episode, action: Action) -> Action:
        """Expand the micro protocol's references (see :func:`expand_query` and :func:`resolve_answer`)."""
        fact = self.facts.get(ep.question.qid)
        if action.kind == "search" and fact is not None:
            return dataclasses.replace(action, query=expand_query(action.query or "", fact.keywords))
        if action.kind == "answer":
            return dataclasses.replace(action, answer=resolve_answer(action.answer or "", ep.messages))
        return action

    def _show(self, ep: Episode, r) -> str:
        fact = self.facts.get(ep.question.qid)
        query_words = {w.lower() for w in _WORD.findall(ep.turns[-1].action.query or "")} if ep.turns else set()
        if fact is not None and r.chunk_id in ep.question.gold_chunk_ids and r.noise != "paraphrase":
            return _window(fact.marked(ep.question.answer), set(fact.keywords))
        sents = _sentences(r.text) or [r.text]
        best = max(sents, key=lambda s: (len(query_words & {w.lower() for w in _WORD.findall(s)}), -sents.index(s)))
        return _window(best, query_words)

    def format_results(self, ep: Episode, result) -> str:
        if not result.results:
            return "No results found."
        return "\n".join(self.task.prompt.result.format(rank=r.rank + 1, text=self._show(ep, r))
                         for r in result.results)

    def _gold_in(self, ep: Episode, result) -> bool:
        """Gold seen = the marked value was shown (the gold chunk, not paraphrased)."""
        return any(r.chunk_id in ep.question.gold_chunk_ids and r.noise != "paraphrase" for r in result.results)


def added_tokens() -> list[str]:
    """``added_tokens`` hook: the code words, one token each in the micro policy's tokenizer.

    >>> added_tokens() == list(CODE_POOL)
    True
    """
    return list(CODE_POOL)


# ----------------------------------------------------------------------------- demonstrations
# Scripted demonstrations for the micro policy's warm start: search, read, answer, sometimes retry.
#
# :class:`Demonstrator` plays the task through the real :class:`MicroEnvironment` (real BM25, real
# drop_gold noise), so every demonstration's ``<information>`` blocks are exactly what the policy will
# see. Its behaviour is a mix, so that GRPO has a behaviour to shift:
#
# * first turn: search the question's four words, by reference (``#1 #2 #3 #4``);
# * the value is shown (marked ``«code»``): answer it, by reference (``«»``);
# * the value is not shown: search again with probability ``p_retry`` (a drop-one-word reformulation,
#   ``#2 #3 #4``, alternating with the full query), otherwise answer anyway (``«»`` then cites no value,
#   a wrong answer); after ``max_searches`` searches it always answers.
#
# With ``p_retry`` below one half, greedy decoding of the warm-started policy answers anyway after a
# miss, while sampling retries now and then.

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
