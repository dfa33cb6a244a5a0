"""``harness lmeval``: the Apollo 3 single-shot lm-eval tasks, run by the harness's own HF backend;
``harness lmeval path``: the folder to pass to ``lm_eval --include_path``.

Registered by ``harness.cli.app`` when present. Only typer is imported here; torch, transformers and
lm-eval load inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from harness.cli.options import bounded, text

lmeval = typer.Typer(invoke_without_command=True, help="Single-shot Apollo 3 (the lm-eval tasks apollo3_*) with the "
                     "harness's HF backend and judge; `harness lmeval path` prints the lm-eval task folder.")


@lmeval.callback()
def run(
    ctx: typer.Context,
    model: Optional[str] = text(None, "--model", "-m", help="Model path, hub id or 'tiny' (required)."),
    variants: str = text("closedbook,goldcontext,rag", "--variants",
                                 help="Comma-separated: closedbook, goldcontext, rag."),
    limit: Optional[int] = bounded(None, "--limit", min=1, help="Only the first N test questions."),
    max_gen_toks: Optional[int] = bounded(None, "--max-gen-toks", min=1, help="Default: the task YAML's (256)."),
    batch_size: int = bounded(1, "--batch-size", min=1),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Else $HARNESS_DATA_DIR, else the cache."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write metrics and samples as JSON here."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file that harness lmeval did "
                               "not write."),
) -> None:
    """Single-shot Apollo 3 (the lm-eval tasks apollo3_*) with the harness's HF backend and judge.

    Same rows, prompts and scorer as `lm_eval --include_path "$(harness lmeval path)" --apply_chat_template`,
    so the two agree on the same model; see docs/lm-eval.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        typer.secho("error: --model is required (or run `harness lmeval path`)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from harness.evaluation.lmeval_tasks import LMEVAL_TASK, VARIANTS, run_single_shot

    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in VARIANTS]
    if bad or not chosen:
        typer.secho(f"error: {f'unknown variant(s) {bad}' if bad else 'no variant given'}; valid: "
                    f"{', '.join(VARIANTS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from harness.core.config import load_task
    from harness.core.outputs import check_output
    from harness.data.loading import load_task_data
    from harness.policies import check_model_name, load_policy

    if output is not None:
        check_output(output, "harness lmeval", force=force, is_ours=_is_lmeval_output)
    check_model_name(model, "hf")
    dd = str(data_dir) if data_dir else None
    corpus = load_task_data(load_task(LMEVAL_TASK), dd).corpus if model == "tiny" else None
    policy = load_policy("hf", model, corpus=corpus, batch_size=batch_size)  # loaded once for all variants
    runs = [run_single_shot(model, v, limit=limit, max_gen_toks=max_gen_toks, data_dir=dd, policy=policy)
            for v in chosen]
    typer.echo(f"{'task':<22}{'n':>4}  {'exact_match':>11}  {'f1':>6}  {'correct':>7}")
    for r in runs:
        m = r["metrics"]
        typer.echo(f"{r['task']:<22}{r['n']:>4}  {m['exact_match']:>11.4f}  {m['f1']:>6.4f}  {m['correct']:>7.4f}")
    if output:
        from harness.core.io import atomic_write_text

        atomic_write_text(output, json.dumps({"model": model, "runs": runs}, indent=2))
        typer.echo(f"written: {output}")


def _is_lmeval_output(path: Path) -> bool:
    """A JSON file an earlier ``harness lmeval -o`` wrote (``{"model": ..., "runs": [...]}``)."""
    try:
        if path.stat().st_size > 64 << 20:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(data) == {"model", "runs"} and isinstance(data["runs"], list)


@lmeval.command("path")
def path() -> None:
    """Print the lm-eval task folder shipped with the harness: `lm_eval --include_path "$(harness lmeval path)"`."""
    from harness.evaluation.lmeval_tasks import LMEVAL_TASK_DIR

    typer.echo(str(LMEVAL_TASK_DIR))
