"""The search environment: batched multi-turn rollouts of any policy over task questions.

At each turn every live episode generates in one batch (one ``policy.generate`` call) and all
their searches go to the retriever in one batched call. Malformed output never raises: the turn's
:class:`~harness.episode.protocol.Action` records the problems and the episode ends or goes on by rule.

The protocol (``protocol.stop_after_action`` of the task, overridable per run):

``True``   backends stop generating at the first ``</search>`` or ``</answer>`` (text past it is
           cut); that first action is the turn's action (Search-R1);
``False``  the whole message is kept (backends stop only at end of turn or ``max_new_tokens``) and
           acted on as ReZero's agent acts: a message with any complete ``<search>`` searches its last
           query and the episode goes on; any other message ends the episode (on its first
           ``<answer>``, if any). Rewards see the whole message, as ReZero's do.

    setup:  env = Environment.from_task(task, data, noise=..., seed=...)
    run:    episodes = env.rollout(policy, questions)
    score:  rewards and metrics are pure functions of the episodes
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from harness.core.config import NoiseConfig, TaskConfig
from harness.data.loading import Question, TaskData
from harness.data.search import SearchRequest, SearchTool
from harness.episode.protocol import Action, Tags, action_stops, parse_turn, truncate_after_action
from harness.episode.record import Episode, Turn, squash


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int


class Policy(Protocol):
    """Anything that writes the next assistant message for a batch of live episodes.

    ``stop``: strings at which to stop generating (kept in the output); ``[]`` means stop only at
    the end of the turn; ``None`` means the backend's default (the closing action tags).
    """

    name: str

    def generate(self, episodes: list[Episode], max_new_tokens: int,
                 stop: Sequence[str] | None = None) -> list[Generation]:
        ...


@dataclass
class Timers:
    """Wall time split between the policy and everything else, for the overhead benchmark."""

    generate_s: float = 0.0
    env_s: float = 0.0
    turns: int = 0

    def to_dict(self) -> dict:
        total = self.generate_s + self.env_s
        return {"generate_s": self.generate_s, "env_s": self.env_s, "turns": self.turns,
                "env_fraction": self.env_s / total if total else 0.0}


class Environment:
    def __init__(self, task: TaskConfig, search_tool: SearchTool, judge_fn: Callable[[str | None, str], dict],
                 stop_after_action: bool | None = None):
        self.task = task
        self.tool = search_tool
        self.judge_fn = judge_fn
        p = task.protocol
        self.tags = Tags(p.think_tag, p.search_tag, p.answer_tag, p.information_tag)
        self.max_turns = p.max_turns
        self.max_new_tokens = p.max_new_tokens
        self.max_episode_tokens = p.max_episode_tokens
        #: The protocol (module docstring); ``None`` takes the task's.
        self.stop_after_action = p.stop_after_action if stop_after_action is None else stop_after_action
        self.timers = Timers()

    @property
    def stop_strings(self) -> list[str]:
        """Where a backend stops generating a turn: the closing action tags, or only at its end."""
        return action_stops(self.tags) if self.stop_after_action else []

    @classmethod
    def from_task(cls, task: TaskConfig, data: TaskData, *, noise: NoiseConfig | None = None, seed: int = 0,
                  retriever=None, retriever_name: str | None = None, k: int | None = None,
                  max_turns: int | None = None, stop_after_action: bool | None = None) -> "Environment":
        """Factory: builds the retriever (unless given), search tool and judge from the task config."""
        from harness.data.retrieval import build_retriever
        from harness.scoring.judge import judge

        sub = task.hook("environment") if task.hooks.environment and cls is Environment else None
        if sub is not None and sub is not Environment:
            return sub.from_task(task, data, noise=noise, seed=seed, retriever=retriever,
                                 retriever_name=retriever_name, k=k, max_turns=max_turns,
                                 stop_after_action=stop_after_action)
        r = task.retrieval
        if retriever is None:
            retriever = build_retriever(retriever_name or r.retriever, data.corpus, stopwords=r.bm25_stopwords,
                                        dense_model=r.dense_model, batch_size=r.dense_batch_size)
        tool = SearchTool(retriever, data.corpus, k=k or r.k, noise=noise or task.noise, seed=seed,
                          result_template=task.prompt.result)
        jc = task.judge

        def judge_fn(pred: str | None, gold: str) -> dict:
            return judge(pred, gold, rule=jc.rule, f1_threshold=jc.f1_threshold).to_dict()

        env = cls(task, tool, judge_fn, stop_after_action=stop_after_action)
        if max_turns:
            env.max_turns = max_turns
        return env

    # ------------------------------------------------------------------ resumable state
    def state_dict(self) -> dict:
        """State a resumed training run must restore to replay the same episodes (none here: the search
        noise is seeded per call; a task's environment with counters, e.g. MicroEnvironment, adds its own)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    # ------------------------------------------------------------------ episode construction
    def new_episode(self, q: Question) -> Episode:
        pr = self.task.prompt
        messages = [{"role": "system", "content": pr.system}, {"role": "user", "content": pr.user.format(question=q.question)}]
        n = self.tool.noise
        return Episode(question=q, messages=messages, noise={"level": n.level, "modes": list(n.modes), "seed": self.tool.seed})

    def _gold_in(self, ep: Episode, result) -> bool:
        paras = ep.question.supporting_paragraphs
        if not paras or not paras[-1].strip():
            return False  # no gold passage: never "seen" (the empty string is in every text)
        gold = squash(paras[-1])
        return any(gold in squash(r.text) for r in result.results)

    def resolve_action(self, ep: Episode, action: Action) -> Action:
        """The action the environment carries out for a parsed turn (a task's environment may override,
        e.g. to expand references in a query or an answer); the base environment takes it as written."""
        return action

    def format_results(self, ep: Episode, result) -> str:
        """The body of the ``<information>`` block for one search (a task's environment may override)."""
        return self.tool.format(result)

    # ------------------------------------------------------------------ the loop
    def step(self, episodes: list[Episode], generations: list[Generation]) -> None:
        """Apply one turn of generations to live episodes: parse, search (batched), end or continue."""
        pending: list[tuple[Episode, Turn]] = []
        for ep, gen in zip(episodes, generations):
            text = truncate_after_action(gen.text, self.tags) if self.stop_after_action else gen.text
            action = self.resolve_action(ep, parse_turn(text, self.tags, stop_after_action=self.stop_after_action))
            turn = Turn(text=text, n_tokens=gen.n_tokens, action=action)
            ep.turns.append(turn)
            ep.messages.append({"role": "assistant", "content": text})
            if action.kind == "answer":
                ep.end_reason = "answer"
            elif action.kind == "none":
                ep.end_reason = "no_action"
            else:
                pending.append((ep, turn))
        if pending:
            reqs = [SearchRequest(t.action.query or "", ep.question.qid, ep.question.gold_chunk_ids, ep.n_searches - 1)
                    for ep, t in pending]
            results = self.tool.search_batch(reqs)
            for (ep, turn), res in zip(pending, results):
                turn.search = res
                turn.gold_seen = self._gold_in(ep, res)
                info = self.task.prompt.information.format(results=self.format_results(ep, res))
                ep.messages.append({"role": "user", "content": info})
        for ep in episodes:
            if ep.done:
                continue
            if len(ep.turns) >= self.max_turns:
                ep.end_reason = "max_turns"
            elif ep.n_generated_tokens >= self.max_episode_tokens:
                ep.end_reason = "token_budget"

    def finish(self, ep: Episode) -> None:
        """Judge the final answer (a missing answer is judged too: it is never correct)."""
        try:
            ep.judge = self.judge_fn(ep.answer, ep.question.answer)
        except Exception as e:  # a judge bug must not lose the run; it is recorded and counted
            ep.judge = {"correct": False, "rule": "error", "error": repr(e)}

    def rollout(self, policy: Policy, questions: list[Question], progress: Callable[[int], None] | None = None) -> list[Episode]:
        episodes = [self.new_episode(q) for q in questions]
        return self.run_episodes(policy, episodes, progress)

    def run_episodes(self, policy: Policy, episodes: list[Episode], progress: Callable[[int], None] | None = None) -> list[Episode]:
        while True:
            live = [e for e in episodes if not e.done]
            if not live:
                break
            t0 = time.perf_counter()
            try:
                gens = policy.generate(live, self.max_new_tokens, stop=self.stop_strings)
            except Exception as e:
                for ep in live:
                    ep.end_reason, ep.error = "error", f"policy.generate failed: {e!r}"
                raise
            t1 = time.perf_counter()
            if len(gens) != len(live):
                raise RuntimeError(f"policy {policy.name} returned {len(gens)} generations for {len(live)} episodes")
            self.step(live, gens)
            done_now = [e for e in live if e.done]
            for ep in done_now:
                self.finish(ep)
            t2 = time.perf_counter()
            self.timers.generate_s += t1 - t0
            self.timers.env_s += t2 - t1
            self.timers.turns += 1
            if progress and done_now:
                progress(len(done_now))
        return episodes
