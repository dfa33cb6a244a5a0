import subprocess
import sys

import pytest

from harness.core.config import NoiseConfig
from harness.data.search import SearchRequest, SearchTool

pytestmark = pytest.mark.tier("integration")


@pytest.fixture(scope="module")
def q(data, bm25):
    # a question whose gold chunk BM25 ranks first, so drop_gold has something to drop
    for q in data.split("test"):
        if bm25.search([q.question], 1)[0][0].chunk_id in q.gold_chunk_ids:
            return q
    pytest.fail("no test question with gold at rank 1")


def tool(data, bm25, level, modes, seed=0, k=3):
    return SearchTool(bm25, data.corpus, k=k, noise=NoiseConfig(level=level, modes=modes), seed=seed)


def req(q, i=0, query=None):
    return SearchRequest(query or q.question, q.qid, q.gold_chunk_ids, i)


def ids(res):
    return [r.chunk_id for r in res.results]


def test_no_noise_is_plain_topk(data, bm25, q):
    res = tool(data, bm25, 0.0, ("drop_gold",)).search_batch([req(q)])[0]
    assert ids(res) == [h.chunk_id for h in bm25.search([q.question], 3)[0]] and not res.noise_events


def test_drop_gold_always_at_p1_and_backfills(data, bm25, q):
    res = tool(data, bm25, 1.0, ("drop_gold",)).search_batch([req(q)])[0]
    assert len(res.results) == 3 and not set(ids(res)) & set(q.gold_chunk_ids)
    assert res.noise_events == ("drop_gold",)
    assert [r.rank for r in res.results] == [0, 1, 2]


def test_noise_reproducible_and_redrawn_per_call(data, bm25, q):
    t = tool(data, bm25, 0.5, ("drop_gold", "random", "paraphrase", "shuffle"))
    a = t.search_batch([req(q, i) for i in range(30)])
    b = t.search_batch([req(q, i) for i in range(30)])
    assert a == b
    assert len({tuple(ids(r)) + r.noise_events for r in a}) > 3   # retries re-draw the noise
    other_seed = tool(data, bm25, 0.5, ("drop_gold", "random", "paraphrase", "shuffle"), seed=1)
    assert other_seed.search_batch([req(q, i) for i in range(30)]) != a


def test_drop_gold_rate_close_to_p(data, bm25, q):
    t = tool(data, bm25, 0.3, ("drop_gold",))
    dropped = sum("drop_gold" in r.noise_events for r in t.search_batch([req(q, i) for i in range(400)]))
    assert 0.22 < dropped / 400 < 0.38


def test_random_and_paraphrase_at_p1(data, bm25, q):
    r = tool(data, bm25, 1.0, ("random",)).search_batch([req(q)])[0]
    assert all(x.noise == "random" for x in r.results) and len(set(ids(r))) == 3
    p = tool(data, bm25, 1.0, ("paraphrase",)).search_batch([req(q)])[0]
    for x in p.results:
        if x.noise == "paraphrase":
            assert x.text in data.corpus.paraphrases[x.chunk_id]
    assert any(x.noise == "paraphrase" for x in p.results)


def test_shuffle_keeps_the_set(data, bm25, q):
    base = tool(data, bm25, 0.0, ("shuffle",)).search_batch([req(q)])[0]
    res = tool(data, bm25, 1.0, ("shuffle",)).search_batch([req(q, i) for i in range(10)])
    assert all(sorted(ids(r)) == sorted(ids(base)) for r in res)
    assert any(ids(r) != ids(base) for r in res)


def test_empty_query_gives_empty_result(data, bm25, q):
    t = tool(data, bm25, 0.5, ("drop_gold", "random"))
    res = t.search_batch([req(q, 0, "   ")])[0]
    assert res.results == () and t.format(res) == "No results found."


def test_format_numbers_results(data, bm25, q):
    res = tool(data, bm25, 0.0, ("drop_gold",)).search_batch([req(q)])[0]
    text = SearchTool(bm25, data.corpus).format(res)
    assert text.startswith("[1] ") and "\n\n[2] " in text


def test_unknown_noise_mode():
    with pytest.raises(ValueError, match="drop_gold, paraphrase, random, shuffle"):
        NoiseConfig(level=0.1, modes=("blur",))


def test_dense_search_prints_no_library_info_unless_verbose(data):
    from harness.core.config import RetrievalConfig
    from harness.data.retrieval import build_retriever

    build_retriever(RetrievalConfig(), data.corpus, "dense")  # the index is cached; both commands below only load it

    def search(*flags):
        p = subprocess.run([sys.executable, "-m", "harness", *flags, "search", "oxygen tank", "--retriever", "dense"],
                           capture_output=True, text=True, timeout=300, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        assert p.stdout.startswith("#1 chunk ")
        return [line for line in p.stderr.splitlines() if line.startswith(("INFO", "DEBUG"))]

    assert search() == []
    loud = search("--verbose")
    assert any(line.startswith("INFO faiss") for line in loud), loud   # the quiet run really had some to hide
