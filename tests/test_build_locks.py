"""Cache builds that sweep workers may start together: two real processes ask for the same build at the
same moment; exactly one builds, the other waits for the lock and reuses the finished folder.

Each process loads what it needs, reports ready, and waits for a shared "go" file so that both call
the builder at once (without the lock both would see an empty cache and build). Every build is
recorded by wrapping the builder's inner step, so the count is observed, not inferred from timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent

WORKER = r'''
import json, os, sys, time
from pathlib import Path

kind, target, sync, extra = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]


def counted(fn):
    def wrapper(*args, **kwargs):
        with open(sync / "builds", "a") as f:
            f.write(f"{os.getpid()}\n")
        return fn(*args, **kwargs)
    return wrapper


from harness.core.config import load_task
from harness.data.loading import load_task_data

if kind == "micro":
    import harness.models.micro as m
    m.train = counted(m.train)
    data = m.load_micro_data()
    spec = m.BuildSpec(steps=2, batch_size=2, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, vocab=400, warmup_steps=1)
    build = lambda: m.build_micro(target, spec=spec, data=data)
else:
    task = load_task("apollo3")
    data = load_task_data(task)
    if kind == "tiny":
        import harness.models.tiny as m
        m._build_tiny_into = counted(m._build_tiny_into)
        build = lambda: m.build_tiny(data.corpus, target)
    elif kind == "warm":
        import harness.train.warmstart as m
        m._train_into = counted(m._train_into)
        build = lambda: m.warm_start(extra, task, data, target, steps=2, batch_size=2)
    elif kind == "dense":
        import harness.data.retrieval as m
        m.DenseRetriever._save = counted(m.DenseRetriever._save)
        build = lambda: m.DenseRetriever(data.corpus, cache_dir=target).index_dir

(sync / f"ready-{os.getpid()}").touch()
while not (sync / "go").exists():
    time.sleep(0.05)
path = Path(build())
print(json.dumps({"path": str(path), "files": sorted(p.name for p in path.iterdir())}))
'''


def _race(kind: str, target: Path, sync: Path, extra: str = "") -> list[dict]:
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, kind, str(target), str(sync), extra], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 600
        while len(list(sync.glob("ready-*"))) < 2:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "workers never got ready"
            time.sleep(0.1)
        (sync / "go").touch()
        outs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


EXPECTED = {
    "tiny": {"config.json", "model.safetensors", "tokenizer.json", "harness_build.json"},
    "micro": {"config.json", "model.safetensors", "tokenizer.json", "harness_build.json"},
    "warm": {"config.json", "model.safetensors", "tokenizer.json"},
    "dense": {"index.faiss", "chunk_ids.npy", "meta.json"},
}


@pytest.mark.parametrize("kind", ["tiny", pytest.param("micro", marks=pytest.mark.slow),
                                  pytest.param("warm", marks=pytest.mark.slow),
                                  pytest.param("dense", marks=pytest.mark.slow)])
def test_two_processes_build_once(kind, data, tmp_path):
    extra = ""
    if kind == "warm":
        from harness.models.tiny import build_tiny

        extra = str(build_tiny(data.corpus, tmp_path / "tiny"))
    target = tmp_path / "cache" / kind
    results = _race(kind, target, tmp_path / "sync", extra)
    builds = (tmp_path / "sync" / "builds").read_text().split()
    assert len(builds) == 1, f"{len(builds)} builds for one cache entry"
    assert results[0]["path"] == results[1]["path"]
    folder = Path(results[0]["path"])
    assert EXPECTED[kind] <= set(results[0]["files"]) and results[0]["files"] == results[1]["files"]
    assert sorted(p.name for p in folder.iterdir()) == results[0]["files"]
    # nothing half-built is left beside it: only the finished folder and the lock file
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([folder.name, f".{folder.name}.lock"])
