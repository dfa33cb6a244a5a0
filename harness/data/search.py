"""The search tool agents call, with reproducible noise injected into its results.

Noise level ``p`` in [0, 1] applies to each enabled mode, in this order:

``drop_gold``
    with probability p the question's gold chunks are removed from the ranking and the next-ranked
    results fill in (a failed search that a reformulated or repeated search may fix);
``random``
    each result is replaced with probability p by a random chunk not already shown;
``paraphrase``
    each result's text is replaced with probability p by one of that chunk's LLM paraphrases from
    ``paragraphs_noise.csv`` (ReZero's noise variants; some are refusals, which is realistic noise);
``shuffle``
    with probability p the ranks are permuted.

Noise is drawn per search call from an RNG seeded by ``(seed, question id, call index)``: a retry
re-draws it, and rerunning the same episode reproduces it exactly.

Example (needs the data):
    >>> tool = SearchTool(retriever, corpus, k=3, noise=NoiseConfig(level=0.5, modes=("drop_gold",)))  # doctest: +SKIP
    >>> res = tool.search_batch([SearchRequest("oxygen tank 2 pressure", "q0001", ("55",), 0)])[0]  # doctest: +SKIP
    >>> print(tool.format(res))                                                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from harness.core.config import NoiseConfig
from harness.core.errors import ConfigError
from harness.data.loading import Corpus
from harness.data.retrieval import Hit, Retriever

#: Extra candidates fetched beyond k so that dropped gold chunks can be back-filled.
_DEPTH_MARGIN = 8


@dataclass(frozen=True)
class SearchRequest:
    query: str
    qid: str
    gold_chunk_ids: tuple[str, ...] = ()
    call_index: int = 0


@dataclass(frozen=True)
class ShownResult:
    """One result as the agent sees it: ``noise`` names what altered it (``None`` = untouched)."""

    chunk_id: str
    text: str
    rank: int
    score: float
    noise: str | None = None

    def to_dict(self) -> dict:
        return {"chunk_id": self.chunk_id, "text": self.text, "rank": self.rank, "score": self.score,
                "noise": self.noise}


@dataclass(frozen=True)
class SearchResult:
    query: str
    results: tuple[ShownResult, ...]
    noise_events: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, d: dict) -> "SearchResult":
        return cls(d["query"], tuple(ShownResult(**r) for r in d["results"]), tuple(d.get("noise_events", ())))

    def to_dict(self) -> dict:
        return {"query": self.query, "results": [r.to_dict() for r in self.results],
                "noise_events": list(self.noise_events)}


def noise_rng(seed: int, qid: str, call_index: int) -> np.random.Generator:
    """Deterministic RNG for one search call (stable across processes and Python versions).

    >>> float(noise_rng(0, "q0001", 0).random()) == float(noise_rng(0, "q0001", 0).random())
    True
    """
    digest = hashlib.sha256(f"{seed}|{qid}|{call_index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class SearchTool:
    """Batched, noisy top-k search over a corpus, formatted for the ``<information>`` block."""

    def __init__(self, retriever: Retriever, corpus: Corpus, k: int = 3, noise: NoiseConfig | None = None,
                 seed: int = 0, result_template: str = "[{rank}] {text}", result_separator: str = "\n\n",
                 no_results: str = "No results found."):
        self.retriever = retriever
        self.corpus = corpus
        self.k = k
        self.noise = noise or NoiseConfig()
        if "paraphrase" in self.noise.modes and self.noise.level > 0 and corpus.paraphrases is None:
            raise ConfigError("the paraphrase noise mode needs paraphrases, and this task has none "
                              "(data.files.paraphrases); choose another --noise-mode")
        self.seed = seed
        self.result_template = result_template
        self.result_separator = result_separator
        self.no_results = no_results

    def search_batch(self, requests: list[SearchRequest]) -> list[SearchResult]:
        """All queries go to the retriever in one call; noise is then applied per request."""
        depth = self.k + _DEPTH_MARGIN
        ranked = self.retriever.search([r.query for r in requests], depth) if requests else []
        return [self._apply_noise(req, hits) for req, hits in zip(requests, ranked)]

    def search(self, query: str, qid: str = "", gold_chunk_ids: tuple[str, ...] = (),
               call_index: int = 0) -> SearchResult:
        return self.search_batch([SearchRequest(query, qid, gold_chunk_ids, call_index)])[0]

    def _apply_noise(self, req: SearchRequest, hits: list[Hit]) -> SearchResult:
        p, modes = self.noise.level, self.noise.modes
        shown = [ShownResult(h.chunk_id, h.text, h.rank, h.score) for h in hits]
        events: list[str] = []
        if p <= 0.0 or not shown:
            return SearchResult(req.query, tuple(self._rerank(shown[: self.k])), ())
        rng = noise_rng(self.seed, req.qid, req.call_index)
        # Draw every mode's randomness up front, in a fixed order, so enabling one mode never shifts
        # another's draws (the random-chunk and paraphrase picks included).
        u_drop, u_shuffle = rng.random(), rng.random()
        u_rand, u_para = rng.random(self.k), rng.random(self.k)
        pick_chunk = rng.integers(len(self.corpus), size=self.k)
        pick_para = rng.random(self.k)
        perm_key = rng.random(self.k)
        if "drop_gold" in modes and req.gold_chunk_ids and u_drop < p:
            kept = [s for s in shown if s.chunk_id not in req.gold_chunk_ids]
            if len(kept) != len(shown):
                events.append("drop_gold")
            shown = kept
        shown = shown[: self.k]
        if "random" in modes:
            taken = {s.chunk_id for s in shown}
            for i in range(len(shown)):
                if u_rand[i] < p:
                    j = int(pick_chunk[i])
                    for _ in range(len(self.corpus)):
                        if self.corpus.chunk_ids[j] not in taken:
                            break
                        j = (j + 1) % len(self.corpus)
                    cid = self.corpus.chunk_ids[j]
                    taken.add(cid)
                    shown[i] = ShownResult(cid, self.corpus.texts[j], i, 0.0, "random")
                    events.append("random")
        if "paraphrase" in modes:
            for i, s in enumerate(shown):
                variants = (self.corpus.paraphrases or {}).get(s.chunk_id)
                if variants and u_para[i] < p:
                    text = variants[int(pick_para[i] * len(variants))]
                    shown[i] = ShownResult(s.chunk_id, text, s.rank, s.score, "paraphrase")
                    events.append("paraphrase")
        if "shuffle" in modes and u_shuffle < p and len(shown) > 1:
            shown = [shown[i] for i in np.argsort(perm_key[: len(shown)], kind="stable")]
            events.append("shuffle")
        return SearchResult(req.query, tuple(self._rerank(shown)), tuple(events))

    @staticmethod
    def _rerank(shown: list[ShownResult]) -> list[ShownResult]:
        return [ShownResult(s.chunk_id, s.text, i, s.score, s.noise) for i, s in enumerate(shown)]

    def format(self, result: SearchResult) -> str:
        """Results as the body of an ``<information>`` block (ranks shown from 1)."""
        if not result.results:
            return self.no_results
        return self.result_separator.join(self.result_template.format(rank=r.rank + 1, text=r.text)
                                          for r in result.results)
