"""GRPO rollouts: full multi-turn search episodes from our Environment, as TRL's ``rollout_func``.

Why ``rollout_func`` and not ``environment_factory`` / ``tools``: TRL's environment and tool hooks
speak the chat template's JSON tool calling (the model emits a tool-call block, TRL parses it with
the template's response schema and inserts a ``tool`` message). Our protocol is ReZero's tag
protocol: ``<think>``, then ``<search>query</search>`` or ``<answer>…</answer>``, with results
returned as a *user* message wrapped in ``<information>``. Only ``rollout_func`` lets the harness run
its own :class:`~harness.environment.env.Environment` (parser, batched retrieval, noise, judge — the same code
``harness run`` evaluates with) and hand TRL the finished token sequences.

What the function returns, per prompt received (TRL 1.16 passes prompts already repeated
``num_generations`` times, consecutive copies forming one GRPO group; one completion per prompt):

    prompt_ids      the chat-templated [system, user] prompt
    completion_ids  every assistant turn with the environment's turns and template glue in between
    logprobs        sampling logprob per completion token (0.0 on environment tokens)
    env_mask        1 = sampled by the model (gets loss), 0 = environment / template (never trained)
    episode         the finished, judged :class:`~harness.episode.record.Episode` — reward functions read it
"""

from __future__ import annotations

import time

import numpy as np

from harness.core.config import RewardWeights
from harness.data.loading import Question
from harness.environment.env import Environment, Generation
from harness.episode.record import Episode
from harness.scoring.rewards import score_episode
from harness.train.tokens import ChatGlue, Trace, TurnSampler


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A seed that depends only on the run seed and the step, so resumed runs replay the same draws.

    >>> step_seed(0, 3) == step_seed(0, 3) != step_seed(0, 4)
    True
    """
    return (seed * 1_000_003 + step * 7_919 + salt) % (2**31 - 1)


class EpisodeRollout:
    """Callable ``rollout_func(prompts, trainer) -> dict``; also usable directly via :meth:`run`."""

    def __init__(self, env: Environment, tokenizer, questions: list[Question], weights: RewardWeights, *,
                 num_generations: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 semantics: str = "rezero"):
        self.env = env
        self.semantics = semantics
        self.glue = ChatGlue(tokenizer)
        self.sampler = TurnSampler(tokenizer, env.stop_strings, temperature, top_p)
        self.weights = weights
        self.num_generations = num_generations
        self.seed = seed
        self.by_prompt = {}
        for q in questions:
            key = self._key(env.new_episode(q).messages)
            if key in self.by_prompt and self.by_prompt[key].answer != q.answer:
                raise ValueError(f"questions {self.by_prompt[key].qid} and {q.qid} share a prompt but not an answer")
            self.by_prompt[key] = q
        #: Per-step statistics the curve reads: within-group reward std and the time split.
        self.stats: dict[int, dict[str, float]] = {}

    @staticmethod
    def _key(prompt) -> str:
        """TRL hands over the prompt only: the last user message identifies the question."""
        return [m for m in prompt if m["role"] == "user"][-1]["content"]

    def question_for(self, prompt) -> Question:
        try:
            return self.by_prompt[self._key(prompt)]
        except KeyError:
            raise KeyError(f"prompt is not one of the training questions: {self._key(prompt)[:80]!r}") from None

    # ------------------------------------------------------------------ TRL entry point
    def __call__(self, prompts: list, trainer) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        step = trainer.state.global_step + 1  # the step these episodes will train
        episodes, traces, timing = self.run(model, [self.question_for(p) for p in prompts], step)
        self.stats[step] = {**self.group_stats(episodes), **timing}
        return {"prompt_ids": [t.prompt_ids for t in traces], "completion_ids": [t.completion_ids for t in traces],
                "logprobs": [t.logprobs for t in traces], "env_mask": [t.env_mask for t in traces],
                "episode": episodes}

    # ------------------------------------------------------------------ the episode loop
    def run(self, model, questions: list[Question], step: int) -> tuple[list[Episode], list[Trace], dict]:
        """Roll out one episode per question (sampling seeded by the step); rewards are scored on each."""
        import torch

        torch.manual_seed(step_seed(self.seed, step))
        self.env.tool.seed = step_seed(self.seed, step, salt=1)  # fresh noise draws every step
        episodes = [self.env.new_episode(q) for q in questions]
        traces = [Trace(self.glue.prompt_ids(ep.messages)) for ep in episodes]
        timing = {"generate_s": 0.0, "env_s": 0.0}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                while live := [i for i, ep in enumerate(episodes) if not ep.done]:
                    t0 = time.perf_counter()
                    samples = self.sampler.sample(model, [traces[i].context for i in live], self.env.max_new_tokens)
                    t1 = time.perf_counter()
                    self._apply(episodes, traces, live, samples)
                    timing["generate_s"] += t1 - t0
                    timing["env_s"] += time.perf_counter() - t1
        finally:
            model.train(was_training)
        for ep in episodes:
            ep.rewards = score_episode(ep, self.weights, self.semantics)
        return episodes, traces, timing

    def _apply(self, episodes: list[Episode], traces: list[Trace], live: list[int], samples) -> None:
        """One environment step for the live episodes, then their model and glue tokens."""
        self.env.step([episodes[i] for i in live], [Generation(s.text, len(s.ids)) for s in samples])
        for i, s in zip(live, samples):
            ep, tr = episodes[i], traces[i]
            if ep.turns[-1].text != s.text:
                raise RuntimeError(f"environment kept {ep.turns[-1].text!r} of sampled turn {s.text!r}")
            tr.add_model(s.ids, s.logprobs)
            if not ep.done:
                tr.add_env(self.glue.after_turn(ep.messages, s.eos, continues=True))
                continue
            if s.finished and ep.end_reason in ("answer", "no_action"):  # cut-off episodes stay truncated
                tr.add_env(self.glue.after_turn(ep.messages, s.eos, continues=False))
            self.env.finish(ep)

    def group_stats(self, episodes: list[Episode]) -> dict[str, float]:
        """Mean over GRPO groups of each active reward's within-group standard deviation."""
        out = {}
        g = self.num_generations
        for name in self.weights.active():
            vals = np.array([ep.rewards.get(name, np.nan) for ep in episodes], dtype=float)
            if len(vals) % g == 0 and len(vals):
                out[f"reward_{name}_std"] = float(np.nanmean(vals.reshape(-1, g).std(axis=1)))
            out[f"reward_{name}_mean"] = float(np.nanmean(vals)) if len(vals) else float("nan")
        return out
