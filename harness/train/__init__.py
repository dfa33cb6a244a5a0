"""``harness train``: GRPO over full multi-turn search episodes, evaluated on held-out questions as it goes.

    config.py     TrainConfig (every option) and its validation against the task, before any model loads
    rollout.py    the TRL ``rollout_func``: episodes played by the environment's one loop
                  (Environment.run_episodes) with a token-level sampler and a per-turn trace hook, as
                  prompt/completion token ids, sampling logprobs and an env_mask that keeps
                  ``<information>`` tokens out of the loss
    tokens.py     the token trace of an episode and the chat-template glue between its turns
    curve.py      curve.csv (one row per step, evaluation columns at eval steps) and fault detection
    callbacks.py  the TrainerCallback that evaluates, logs, detects faults, applies the stopping rules and
                  checkpoints the harness state
    peak.py       RUN_DIR/peak/: the best eval's model as a ready HF folder (LoRA merged) with peak.json
    runner.py     TrainRun: setup (resume from the newest complete checkpoint) -> train -> results.json (the
                  command line then writes the report)
    build.py      factories of a run's pieces: dataset, environments, GRPO config, trainer
    warmstart.py  --warm-start: supervised steps on scripted demonstrations before GRPO

Nothing here imports torch at package import; the modules that need it import it inside functions.
"""
