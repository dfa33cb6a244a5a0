"""Self-contained HTML reports (harness.analysis.report), including a headless-chromium render."""

from __future__ import annotations

import base64
import doctest
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness.analysis.report
from harness.analysis.report import highlight_protocol, load_run, render_report_html, summary_table, write_report

# Whole reports rendered with their figures (matplotlib) from run folders on disk, and in chromium.
pytestmark = pytest.mark.integration

XSS = "<script>alert(1)</script>"
PWN = "document.body.setAttribute('data-pwned','1')"
XSS_DOM = f"<script>{PWN}</script><img src=x onerror=\"{PWN}\">"


def write_curve(run_dir: Path, peak_step: int, zero_step: int, peak: float) -> None:
    steps = np.arange(0, 625, 25)
    acc = np.interp(steps, [0, peak_step, zero_step, 600], [0.1, peak, 0.0, 0.0])
    after = steps > peak_step
    pd.DataFrame({
        "step": steps, "accuracy": acc,
        "accuracy_ci_low": np.clip(acc - 0.1, 0, 1), "accuracy_ci_high": np.clip(acc + 0.1, 0, 1),
        "reward_correctness_mean": acc * 4, "reward_format_mean": np.where(after, 0.5, 1.8),
        "reward_correctness_std": np.where(after, 0.0, 0.5),
        "entropy": np.where(after, 0.2, 1.0), "kl": np.where(after, 0.1, 0.01),
        "completion_length": np.where(after, 900, 300), "searches_per_episode": np.where(after, 6, 2),
        "retry_rate": np.where(after, 0.9, 0.3), "format_validity": np.where(after, 0.5, 0.95),
    }).to_csv(run_dir / "curve.csv", index=False)


def episode(qid: str, assistant: str, **extra) -> dict:
    return {"qid": qid, "question": "Which tank failed?", "gold_answer": "oxygen tank 2",
            "messages": [{"role": "system", "content": "Reason in <think> </think>."},
                         {"role": "user", "content": "Question: Which tank failed?"},
                         {"role": "assistant", "content": assistant},
                         {"role": "user", "content": "<information>[1] Oxygen tank 2 failed.</information>"}],
            "answer": "oxygen tank 2", "correct": True, "end_reason": "answer",
            "rewards": {"correctness": 1.0, "format": 0.5}, "n_searches": 1, "judge": {"rule": "exact_match"},
            **extra}


def write_samples(run_dir: Path, lines: list) -> None:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    (run_dir / "samples.jsonl").write_text(text + "\n", encoding="utf-8")


def make_run(root: Path, name: str, peak_step: int, zero_step: int, peak: float) -> Path:
    run_dir = root / name
    run_dir.mkdir()
    write_curve(run_dir, peak_step, zero_step, peak)
    (run_dir / "results.json").write_text(json.dumps({
        "model": "Qwen/Qwen2.5-0.5B-Instruct", "task": "apollo3", "config": {"preset": name, "lr": 1e-6},
        "peak": {"step": peak_step, "accuracy": peak},
        "metrics": {"accuracy": peak, "by_noise": {"0.0": {"accuracy": peak, "searches": 1.5},
                                                   "0.3": {"accuracy": peak / 2}}, "note": "text"},
    }))
    write_samples(run_dir, [
        episode("q0019", f"<think>try</think>{XSS}<search>oxygen tank failure</search>"),
        episode("q0024", XSS_DOM, correct=False, end_reason="max_turns", answer=None),
        "{not json",
        {"qid": "q0033"},  # every other field missing
    ])
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [make_run(root, "rezero", 250, 450, 0.46875), make_run(root, "baseline", 350, 600, 0.25)]


@pytest.fixture(scope="module")
def page(runs) -> str:
    return render_report_html(runs)


def test_model_text_is_escaped(page: str):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page


def test_protocol_tags_highlighted(page: str):
    assert ('<span class="tag-search"><span class="tag">&lt;search&gt;</span>oxygen tank failure'
            in page)
    for tag in ("think", "information"):
        assert f'<span class="tag-{tag}">' in page


def test_no_network_references(page: str):
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?(?:https?:)?//", page)
    assert "http://" not in page and "https://" not in page


def test_figures_are_embedded_png_data_uris(page: str):
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(sources) == 4  # accuracy, reward components, retry metrics, indicators
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_runs_and_peak_steps_in_tables(page: str, runs):
    assert "rezero" in page and "baseline" in page
    table = summary_table([load_run(r) for r in runs])
    assert table.loc["rezero", "peak step"] == "250" and table.loc["baseline", "peak step"] == "350"
    assert table.loc["rezero", "zero step"] == "450"
    assert re.fullmatch(r"\[0\.368\d, 0\.568\d\]", table.loc["rezero", "peak CI"])
    summary = page.split('id="summary"')[1].split('id="figures"')[0]
    assert "<td>250</td>" in summary and "<td>350</td>" in summary


def test_metrics_table_has_nested_numeric_leaves(page: str):
    metrics = page.split('id="metrics"')[1].split('id="samples"')[0]
    assert "by_noise / 0.3 / accuracy" in metrics and "<td>0.125</td>" in metrics
    assert "note" not in metrics.split("</table>")[0]  # text leaves are not metrics


def test_indicators_and_problems_reported(page: str):
    assert "onset 275, lead" in page  # every indicator flips right after rezero's peak at 250
    assert "skipped 1 malformed line" in page


def test_episode_browser_is_collapsible_and_defensive(page: str):
    samples = page.split('id="samples"')[1]
    assert samples.count("<details") == 6  # 3 valid episodes per run; the bad line is skipped
    assert samples.count("<details open>") == 2  # the first episode of each file starts open
    assert "q0033" in samples and "max_turns" in samples


def test_curve_only_and_eval_only_dirs(tmp_path: Path):
    curve_only = tmp_path / "curve_only"
    curve_only.mkdir()
    write_curve(curve_only, 250, 450, 0.5)
    eval_only = tmp_path / "eval_only"
    eval_only.mkdir()
    (eval_only / "results.json").write_text(json.dumps({  # the shape harness run writes (lm-eval style)
        "task": {"name": "apollo3", "version": 1}, "model": {"backend": "hf", "model": "tiny"},
        "results": {"scripted": {"noise=0.3": {"accuracy": 0.3125, "end_reasons": {"answer": 30}}}}}))
    write_samples(eval_only, [episode("q0050", "<answer>oxygen tank 2</answer>", policy="scripted",
                                      noise_level=0.3)])

    html_curve = render_report_html([curve_only])
    assert html_curve.count("data:image/png;base64,") == 4 and "Episodes (first" in html_curve
    assert "<summary>" not in html_curve.split('id="samples"')[1]
    html_eval = render_report_html([eval_only])
    assert "data:image/png" not in html_eval and "No curve.csv" in html_eval
    assert "<td>0.3125</td>" in html_eval and "q0050" in html_eval
    assert "scripted / noise=0.3 / end_reasons / answer" in html_eval
    assert "<td>apollo3 v1</td>" in html_eval and "<td>tiny (hf)</td>" in html_eval
    assert "policy scripted · noise_level 0.3" in html_eval
    assert '<span class="tag-answer">' in html_eval


def test_hostile_field_types_are_rendered_as_text():
    page = harness.analysis.report.episode_html({
        "qid": ["<blink>"], "correct": [1], "messages": "<script>x</script>", "rewards": [1],
        "answer": {"a": "<iframe>"}, "question": 3,
    })
    assert "<script" not in page and "<blink>" not in page and "<iframe>" not in page
    assert "&lt;blink&gt;" in page and "&lt;iframe&gt;" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<summary>? " in page
    role = harness.analysis.report.episode_html({"messages": [{"role": '"><script>', "content": None}]})
    assert 'class="msg msg-other"' in role and "&quot;&gt;&lt;script&gt;" in role


def test_eval_samples_at_peak_and_last_step(tmp_path: Path):
    run_dir = tmp_path / "train"
    run_dir.mkdir()
    write_curve(run_dir, 250, 450, 0.5)
    (run_dir / "eval_samples").mkdir()
    for step in (0, 250, 600):
        lines = [json.dumps(episode(f"s{step}-{i}", "<answer>x</answer>")) for i in range(60)]
        (run_dir / "eval_samples" / f"step_{step:05d}.jsonl").write_text("\n".join(lines))
    run = load_run(run_dir)
    assert [label for label, _ in run.samples] == ["eval_samples step 250 (peak)",
                                                   "eval_samples step 600 (last)"]
    assert all(len(eps) == 50 for _, eps in run.samples)


def test_bad_inputs(tmp_path: Path):
    with pytest.raises(ValueError):
        render_report_html([])
    with pytest.raises(FileNotFoundError):
        render_report_html([tmp_path / "missing"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{oops")
    (broken / "curve.csv").write_text("step,acc\n0,1\n")
    page = render_report_html([broken])
    assert "results.json:" in page and "missing required column" in page
    (broken / "curve.csv").write_text("step,accuracy,entropy\n0,0.1,n/a\n50,0.3,1.0\n100,0.0,n/a\n")
    page = render_report_html([broken])
    assert "entropy" in page and page.count("data:image/png;base64,") == 2


def test_write_report_default_path_and_atomicity(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "eval"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"metrics": {"accuracy": 0.5}}))
    monkeypatch.chdir(tmp_path)
    out = write_report([run_dir], title="Eval <b>only</b>")
    assert out.parent == Path("reports") and re.fullmatch(r"eval-\d{8}-\d{6}\.html", out.name)
    text = out.read_text(encoding="utf-8")
    assert "<title>Eval &lt;b&gt;only&lt;/b&gt;</title>" in text
    explicit = write_report([run_dir], output=tmp_path / "nested" / "r.html")
    assert explicit.is_file()
    assert sorted(p.name for p in explicit.parent.iterdir()) == ["r.html"]  # no temp file left
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_highlight_escapes_before_tagging():
    assert highlight_protocol("<answer><b>x</b></answer>") == (
        '<span class="tag-answer"><span class="tag">&lt;answer&gt;</span>&lt;b&gt;x&lt;/b&gt;'
        '<span class="tag">&lt;/answer&gt;</span></span>')
    lone = '<span class="tag tag-search">&lt;search&gt;</span>unclosed'
    assert highlight_protocol("<search>unclosed") == lone


def test_docstring_examples_run():
    result = doctest.testmod(harness.analysis.report)
    assert result.attempted >= 2 and result.failed == 0


# ---------------------------------------------------------------- real browser


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
             "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(profile)})


@pytest.mark.browser
def test_report_renders_in_headless_chromium(runs, tmp_path: Path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (chromium, chromium-browser or google-chrome); "
                    "install with: apt-get install -y chromium")
    report = write_report(runs, output=tmp_path / "report.html")
    url = report.resolve().as_uri()
    screenshot = tmp_path / "report.png"
    shot = chromium(binary, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,2000",
                    url)
    # The page has no script, so any console message (uncaught errors, CSP violations, blocked
    # loads) is a defect: chromium logs them as "...:CONSOLE:N] ..." or "CONSOLE(N)".
    errors = [line for line in shot.stderr.splitlines()
              if re.search(r":CONSOLE[:(]|Uncaught|Refused to|net::ERR_|Failed to load", line)]
    assert not errors, "\n".join(errors)
    assert screenshot.is_file() and screenshot.stat().st_size > 50_000, shot.stderr[-2000:]

    dom = chromium(binary, tmp_path / "profile", "--dump-dom", url).stdout
    assert "Peak and collapse" in dom and "rezero" in dom and "baseline" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert 'data-pwned="1"' not in dom  # no injected script or handler ran
