import pytest

from harness.core.config import RetrievalConfig
from harness.core.errors import ConfigError
from harness.data.retrieval import DenseRetriever, build_retriever, recall_at


def test_bm25_recall_on_all_questions(data, bm25):
    rec = recall_at(bm25, [q.question for q in data.questions], [q.gold_chunk_ids for q in data.questions])
    assert rec[5] >= 0.90
    assert rec[1] == pytest.approx(0.758, abs=0.01) and rec[3] == pytest.approx(0.903, abs=0.01)


def test_bm25_batched_equals_single(data, bm25):
    qs = [q.question for q in data.questions[:20]]
    batched = bm25.search(qs, 3)
    assert batched == [bm25.search([q], 3)[0] for q in qs]
    assert all([h.rank for h in hits] == list(range(len(hits))) for hits in batched)


def test_blank_and_unknown_queries(bm25):
    out = bm25.search(["", "   ", "zzzzqqq", "oxygen tank"], 3)
    assert out[0] == [] and out[1] == [] and out[2] == []
    assert len(out[3]) == 3 and out[3][0].score >= out[3][1].score


def test_unknown_retriever(data):
    with pytest.raises(ConfigError, match="bm25, dense"):
        build_retriever(RetrievalConfig(), data.corpus, "tfidf")


def test_dense_recall_and_cache(data):
    r = build_retriever(RetrievalConfig(), data.corpus, "dense")
    rec = recall_at(r, [q.question for q in data.questions], [q.gold_chunk_ids for q in data.questions])
    assert rec[5] == pytest.approx(0.789, abs=0.02)
    again = DenseRetriever(data.corpus)
    assert again.cache_hit and again.search(["oxygen tank"], 3) == r.search(["oxygen tank"], 3)
    assert r.search([" "], 3) == [[]]
    # a corrupted cache is rebuilt, not trusted
    (again.index_dir / "index.faiss").write_bytes(b"garbage")
    rebuilt = DenseRetriever(data.corpus)
    assert not rebuilt.cache_hit

    def ids(ret):
        return [h.chunk_id for h in ret.search(["oxygen tank"], 3)[0]]

    assert ids(rebuilt) == ids(r)
