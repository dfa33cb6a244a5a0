"""``harness train``: GRPO over full multi-turn search episodes, with a held-out curve (see harness.train).

Only typer and the standard library are imported here; torch and TRL load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train(
    task: str = typer.Option("apollo3", "--task", "-t", help="Task name (a folder under tasks/) or path to a task.yaml."),
    preset: str = typer.Option("rezero", "--preset", help="Task preset: reward weights and train noise (rezero, baseline)."),
    model: str = typer.Option("tiny", "--model", "-m", help="Model path or hub id, or 'tiny' (built locally, CPU smoke runs)."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="Override preset weights: 'retry=0,format=1' (0 disables)."),
    train_noise: Optional[float] = typer.Option(None, "--train-noise", help="Train noise level in [0,1] (default: preset)."),
    train_noise_mode: Optional[str] = typer.Option(None, "--train-noise-mode", help="drop_gold, paraphrase, random, shuffle (comma-separated)."),
    eval_noise: Optional[float] = typer.Option(None, "--eval-noise", help="Eval noise level (default: the task's)."),
    eval_noise_mode: Optional[str] = typer.Option(None, "--eval-noise-mode"),
    eval_split: str = typer.Option("test", "--eval-split", help="Held-out split evaluated: test, train or all."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Evaluate only the first N questions."),
    eval_every: int = typer.Option(25, "--eval-every", help="Evaluate every N steps (and at steps 0 and the last)."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every K steps (default: --eval-every)."),
    max_steps: int = typer.Option(300, "--max-steps"),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Stop after step N as if interrupted (resumable)."),
    num_generations: int = typer.Option(4, "--num-generations", "-G", help="GRPO group size (episodes per question)."),
    prompts_per_step: int = typer.Option(2, "--prompts-per-step", help="Questions per step (batch = this x group size)."),
    learning_rate: float = typer.Option(1e-5, "--lr", "--learning-rate"),
    lr_scheduler: str = typer.Option("constant", "--lr-scheduler", help="constant, constant_with_warmup, linear, cosine."),
    warmup_steps: int = typer.Option(0, "--warmup-steps"),
    beta: float = typer.Option(0.001, "--beta", help="KL coefficient (0 = no reference model)."),
    epsilon: float = typer.Option(0.2, "--epsilon", help="PPO clip range."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm"),
    loss_type: str = typer.Option("dapo", "--loss-type", help="grpo, dapo, dr_grpo or bnpo."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature of training rollouts."),
    top_p: float = typer.Option(1.0, "--top-p"),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", help="Assistant turns per episode (task default 20)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Tokens per assistant turn (task default 512)."),
    seed: int = typer.Option(0, "--seed"),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA rank through peft (0 = full fine-tuning)."),
    lora_alpha: Optional[int] = typer.Option(None, "--lora-alpha", help="LoRA alpha (default 2 x rank)."),
    vllm: bool = typer.Option(False, "--vllm", help="vLLM colocated generation (not implemented: explains why)."),
    kl_alarm: float = typer.Option(10.0, "--kl-alarm", help="Record a fault when the KL exceeds this."),
    zero_std_patience: int = typer.Option(10, "--zero-std-patience", help="Record a fault after N steps with no reward variance."),
    eval_batch_size: int = typer.Option(64, "--eval-batch-size"),
    warm_start: int = typer.Option(0, "--warm-start", help="Supervised steps on scripted demonstrations first "
                                   "(random-init models such as tiny never emit the protocol otherwise)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (1 is fastest for tiny on a busy CPU)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Task data folder (else $HARNESS_DATA_DIR, else the cache)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output-dir."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html at the end."),
) -> None:
    """Train a policy with GRPO over multi-turn search episodes; evaluate on held-out questions as it goes."""
    values = {k: v for k, v in locals().items()}
    for k in ("output_dir", "data_dir"):
        values[k] = str(values[k]) if values[k] is not None else None
    from harness.train.config import TrainConfig
    from harness.train.runner import TrainRun

    run = TrainRun(TrainConfig.build(**values))
    res = run.run()
    peak, final = res.get("peak") or {}, res.get("final") or {}
    line = (f"{res['status']}: peak accuracy {peak.get('accuracy', float('nan')):.4f} at step {peak.get('step')}; "
            f"final {final.get('accuracy', float('nan')):.4f} at step {final.get('step')}")
    if res.get("faults"):
        line += f"; faults: {', '.join(sorted({f['kind'] for f in res['faults']}))}"
    typer.echo(line)
    typer.echo(f"run directory: {run.out}")
    if (run.out / "report.html").is_file():
        typer.echo(f"report: {run.out / 'report.html'}")
    if res["status"] == "diverged":
        raise typer.Exit(3)
    if res["status"] == "partial" and run.stop_requested:  # interrupted; --stop-after is a normal exit
        raise typer.Exit(130)
