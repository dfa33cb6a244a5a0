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

The episodes are played by :meth:`Environment.run_episodes`, the loop ``harness run`` uses; training
only adapts it at two points:

    policy   :class:`TraceSampler`: samples each live episode's next turn from its token trace with the
             Hugging Face backend (:meth:`harness.policies.hf.HFPolicy.sample`): ids, logprobs, EOS
    hook     :class:`TraceRecorder`: after each turn, appends the model's ids and the chat template's
             glue (:meth:`harness.train.tokens.ChatGlue.after_turn`) to each episode's :class:`Trace`
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.core.config import RewardWeights
from harness.data.loading import Question
from harness.environment.env import Environment, Generation
from harness.episode.record import Episode
from harness.scoring.rewards import score_episode
from harness.train.tokens import ChatGlue, Trace


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A seed that depends only on the run seed and the step, so resumed runs replay the same draws.

    >>> step_seed(0, 3) == step_seed(0, 3) != step_seed(0, 4)
    True
    """
    return (seed * 1_000_003 + step * 7_919 + salt) % (2**31 - 1)


class TraceRecorder:
    """Per-turn hook of the episode loop: the token :class:`Trace` of each episode, built as it plays.

    After a turn, each episode gets the turn's sampled ids (with their logprobs) and then, if it goes
    on, the glue up to the next assistant header (end-of-turn, ``<information>`` message, header); if it
    ended on its own (an answer, or a message without action, that finished on EOS or a stop string),
    the end-of-turn closing. An episode cut off (by ``max_new_tokens``, ``max_turns`` or the token
    budget) stays truncated, as TRL expects.
    """

    def __init__(self, glue: ChatGlue, episodes: list[Episode]):
        self.glue = glue
        self._traces = {id(ep): Trace(glue.prompt_ids(ep.messages)) for ep in episodes}

    def context(self, ep: Episode) -> list[int]:
        return self._traces[id(ep)].context

    def traces(self, episodes: list[Episode]) -> list[Trace]:
        return [self._traces[id(ep)] for ep in episodes]

    def __call__(self, episodes: list[Episode], generations: list[Generation]) -> None:
        for ep, g in zip(episodes, generations):
            tr = self._traces[id(ep)]
            if ep.turns[-1].text != g.text:
                raise RuntimeError(f"environment kept {ep.turns[-1].text!r} of sampled turn {g.text!r}")
            tr.add_model(g.ids, g.logprobs)
            if not ep.done:
                tr.add_env(self.glue.after_turn(ep.messages, g.eos, continues=True))
            elif g.finished and ep.end_reason in ("answer", "no_action"):  # cut-off episodes stay truncated
                tr.add_env(self.glue.after_turn(ep.messages, g.eos, continues=False))


class TraceSampler:
    """The training policy: each live episode's next turn, sampled from its trace's token context."""

    def __init__(self, backend, recorder: TraceRecorder):
        self.backend = backend
        self.recorder = recorder
        self.name = backend.name

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        return self.backend.sample([self.recorder.context(ep) for ep in episodes], max_new_tokens, stop)


def correct_logprob(episodes: Sequence[Episode], traces: Sequence[Trace]) -> dict[str, float]:
    """``logp_correct``: the mean sampling log-probability per model token of the step's correct episodes (an
    early-warning signal: arXiv 2512.04220 reports it stagnates, then decays, before Search-R1 runs collapse);
    absent when no episode was correct.

    >>> from harness.train.tokens import Trace
    >>> class Ep:
    ...     def __init__(self, ok): self.correct = ok
    >>> t1, t2 = Trace([1], [5, 6, 7], [-0.5, 0.0, -1.5], [1, 0, 1]), Trace([1], [5], [-3.0], [1])
    >>> correct_logprob([Ep(True), Ep(False)], [t1, t2])
    {'logp_correct': -1.0}
    """
    per = [sum(lp for lp, m in zip(t.logprobs, t.env_mask) if m) / max(sum(t.env_mask), 1)
           for ep, t in zip(episodes, traces) if ep.correct and sum(t.env_mask)]
    return {"logp_correct": float(np.mean(per))} if per else {}


class EpisodeRollout:
    """Callable ``rollout_func(prompts, trainer) -> dict``; also usable directly via :meth:`run`."""

    def __init__(self, env: Environment, tokenizer, questions: list[Question], weights: RewardWeights, *,
                 num_generations: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 semantics: str = "rezero", noise_at=None):
        self.env = env
        #: ``step -> NoiseConfig`` of a scheduled train noise (harness.train.schedule); None: constant.
        self.noise_at = noise_at
        self.semantics = semantics
        self.tokenizer = tokenizer
        self.glue = ChatGlue(tokenizer)
        self.temperature, self.top_p = temperature, top_p
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
        self.stats[step] = {**self.group_stats(episodes), **timing, **correct_logprob(episodes, traces)}
        return {"prompt_ids": [t.prompt_ids for t in traces], "completion_ids": [t.completion_ids for t in traces],
                "logprobs": [t.logprobs for t in traces], "env_mask": [t.env_mask for t in traces],
                "episode": episodes}

    # ------------------------------------------------------------------ the episodes of one step
    def run(self, model, questions: list[Question], step: int) -> tuple[list[Episode], list[Trace], dict]:
        """Roll out one episode per question through the environment's loop (sampling and search noise
        seeded by the step); rewards are scored on each."""
        import torch

        from harness.policies.hf import HFPolicy, SamplingConfig

        torch.manual_seed(step_seed(self.seed, step))
        self.env.reseed(step_seed(self.seed, step, salt=1))  # fresh noise draws every step
        if self.noise_at is not None:
            self.env.tool.noise = self.noise_at(step)
        episodes = [self.env.new_episode(q) for q in questions]
        recorder = TraceRecorder(self.glue, episodes)
        was_training = model.training
        before = (self.env.timers.generate_s, self.env.timers.env_s)
        try:
            backend = HFPolicy("policy", device=str(model.device), model=model, tokenizer=self.tokenizer,
                               sampling=SamplingConfig(self.temperature, self.top_p, self.seed))
            self.env.run_episodes(TraceSampler(backend, recorder), episodes, hooks=[recorder])
        finally:
            model.train(was_training)
        timing = {"generate_s": self.env.timers.generate_s - before[0], "env_s": self.env.timers.env_s - before[1]}
        if self.noise_at is not None:
            timing["train_noise_level"] = self.env.tool.noise.level
        for ep in episodes:
            ep.rewards = score_episode(ep, self.weights, self.semantics)
        return episodes, recorder.traces(episodes), timing

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
