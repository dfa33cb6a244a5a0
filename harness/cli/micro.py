"""``harness micro``: build and inspect the micro-scale policy (light imports only at module level)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from harness.cli.options import bounded, given, seed_option

micro = typer.Typer(no_args_is_help=True, help="The micro-scale policy: a few-million-parameter model that learns "
                    "on CPU (task apollo3_micro). `--model micro` uses it.")


@micro.command("build")
def build(
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Folder to write (default: the cache, "
                                              "where `--model micro` finds it)."),
    steps: Optional[int] = bounded(None, "--steps", min=1, help="Warm-start steps (default: the shipped spec)."),
    seed: int = seed_option(),
    p_retry: Optional[float] = bounded(None, "--p-retry", min=0.0, max=1.0,
                                            help="Probability that a demonstration searches again after a miss "
                                            "(default 0.3, the shipped weights). `--model micro:p_retry=X` names "
                                            "the same build."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the folder holds a model."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with the task's data files."),
) -> None:
    """Build the micro policy deterministically on CPU: tokenizer, model, warm start on demonstrations."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from harness.models.micro import BuildSpec, build_micro, check_build_target, load_micro_data, weights_digest

    if output_dir is not None:   # before any work: the build replaces the folder whole
        check_build_target(output_dir)
    spec = BuildSpec(seed=seed)
    if steps is not None:
        spec = replace(spec, steps=steps)
    if p_retry is not None:
        spec = replace(spec, p_retry=p_retry)
    data = load_micro_data(data_dir)
    bar = tqdm(total=spec.steps, desc="micro warm start", unit="step", file=sys.stderr)

    def tick(n: int, row: dict) -> None:
        bar.update(n)
        bar.set_postfix(loss=f"{row['loss']:.3f}")

    path = build_micro(output_dir, spec=spec, data=data, force=force, progress=tick)
    bar.close()
    info = json.loads((path / "harness_build.json").read_text())
    typer.echo(json.dumps({"path": str(path), "n_params": info["n_params"], "train_seconds": info["train_seconds"],
                           "final_loss": info["log"][-1]["loss"] if info["log"] else None,
                           "model.safetensors sha256": weights_digest(path)}, indent=2))


@micro.command("path")
def path(model: str = typer.Argument("micro", callback=given,
                                     help="micro, or micro:KEY=VALUE,... (a non-default build)"),
         data_dir: Optional[Path] = typer.Option(None, "--data-dir")) -> None:
    """Print where `--model micro` (or `micro:p_retry=0.03`) resolves, building it first if needed."""
    from harness.models.micro import resolve_micro
    from harness.models.resolve import micro_spec

    spec = micro_spec(model)
    if spec is None:
        raise typer.BadParameter(f"{model!r} is not a micro model name (micro or micro:KEY=VALUE,...)")
    typer.echo(resolve_micro(data_dir=data_dir, spec=spec))
