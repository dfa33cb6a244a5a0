"""``harness bench train``: what one GRPO step costs and where the time goes.

Runs a short ``harness train`` in a temporary directory and times every step from ``on_step_begin``
to ``on_optimizer_step`` (so the held-out evaluations are excluded). Each step splits into
generation (sampling turns), the environment (parsing, retrieval, judging, glue tokenisation) and the
training update (TRL's logprob/reference passes, loss, backward, optimiser), which is the rest.
With ``bare_trl`` the same model, prompts, group size, LoRA and optimiser settings are then run through a
plain ``GRPOTrainer`` (TRL's own single-turn generation, no environment, a reward on completion length)
and timed the same way: the harness's step over the bare step says what the multi-turn machinery costs.
Nothing here asserts a speed.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time

from harness.core.results import machine_info, package_versions


def _length_reward(completions, **_) -> list[float]:
    """A reward with variance inside every group (so the bare step does the same backward work)."""
    return [float(len(str(c))) / 100.0 for c in completions]


def _timer_callback(run, steps: list[dict]):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            stats = run.rollout.stats.get(state.global_step + 1, {})
            steps.append({"step_s": time.perf_counter() - self.t0, "generate_s": stats.get("generate_s", 0.0),
                          "env_s": stats.get("env_s", 0.0)})

    return StepTimer()


def bench_train(task: str = "apollo3", data_dir=None, model: str = "tiny", steps: int = 6, num_generations: int = 4,
                prompts_per_step: int = 2, max_turns: int | None = 3, max_new_tokens: int | None = 24,
                warm_start: int = 40, threads: int | None = 1, seed: int = 0, lora_rank: int = 0,
                beta: float | None = None, bare_trl: bool = False) -> dict:
    """Per-step time (mean over steps after the first), peak RSS and the generation/update/env split."""
    from harness.train.config import TrainConfig
    from harness.train.runner import TrainRun

    timed: list[dict] = []
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig.build(task=task, model=model, data_dir=str(data_dir) if data_dir else None,
                                max_steps=steps, eval_every=steps, eval_limit=4, num_generations=num_generations,
                                prompts_per_step=prompts_per_step, max_turns=max_turns,
                                max_new_tokens=max_new_tokens, warm_start=warm_start, threads=threads, seed=seed,
                                report=False, output_dir=out, keep_peak=False, lora_rank=lora_rank,
                                **({} if beta is None else {"beta": beta}))
        run = TrainRun(cfg)
        run.extra_callbacks.append(_timer_callback(run, timed))
        t0 = time.perf_counter()
        res = run.run()
        wall = time.perf_counter() - t0
        tokens = [float(r["completion_length"]) for r in run.curve.rows if r.get("completion_length") not in (None, "")]
        bare = _bare_trl(run, steps, tempfile.mkdtemp(dir=out)) if bare_trl else None
    body = timed[1:] or timed
    step_s = statistics.mean(s["step_s"] for s in body)
    gen = statistics.mean(s["generate_s"] for s in body)
    env = statistics.mean(s["env_s"] for s in body)
    update = max(step_s - gen - env, 0.0)
    return {
        "machine": machine_info(), "versions": package_versions(), "model": model,
        "episodes_per_step": num_generations * prompts_per_step, "max_turns": max_turns,
        "max_new_tokens": max_new_tokens, "steps": steps, "threads": threads, "status": res.status,
        "first_step_s": timed[0]["step_s"] if timed else None, "step_s": step_s,
        "fraction": {"generation": gen / step_s, "update": update / step_s, "environment": env / step_s},
        "eval_s_total": res.timing["eval_s"], "wall_s": wall, "lora_rank": lora_rank,
        "mean_completion_tokens": statistics.mean(tokens) if tokens else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **({"bare_trl": bare, "harness_over_bare_step": step_s / bare["step_s"]} if bare else {}),
    }


def _bare_trl(run, steps: int, out: str) -> dict:
    """The same batch through a plain GRPOTrainer: TRL's generation of one turn, the same update settings.

    ``max_completion_length`` is the harness's tokens per turn; the prompts are the run's first-turn
    messages (its training dataset). Timed from ``on_step_begin`` to ``on_optimizer_step`` as above.
    """
    import os
    from pathlib import Path

    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from harness.train.build import grpo_config, lora_config

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    cfg = run.cfg.model_copy(update={"max_steps": steps})
    args = grpo_config(cfg, run.resolved, Path(out))
    args.max_completion_length, args.save_strategy, args.reward_weights = run.resolved.max_new_tokens, "no", None
    times, lengths = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(float(logs["completions/mean_length"]))

    trainer = GRPOTrainer(model=run.model_path, reward_funcs=[_length_reward], args=args,
                          train_dataset=run.dataset, processing_class=run.tokenizer, peft_config=lora_config(cfg),
                          callbacks=[Timer()])
    trainer.remove_callback(PrinterCallback)  # its log lines would break the command's JSON on stdout
    trainer.train()
    body = times[1:] or times
    return {"steps": len(times), "first_step_s": times[0] if times else None, "step_s": statistics.mean(body),
            "mean_completion_tokens": statistics.mean(lengths) if lengths else None,
            "max_completion_length": run.resolved.max_new_tokens}

