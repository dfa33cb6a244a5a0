"""The search environment: batched multi-turn rollouts of any policy over task questions.

At each turn every live episode generates in one batch (one ``policy.generate`` call) and all
their searches go to the retriever in one batched call. Malformed output never raises: the turn's
:class:`~harness.episode.protocol.Action` records the problems and the episode ends or goes on by rule.

    setup:  env = Environment.from_task(task, data, noise=..., seed=...)
    run:    episodes = env.rollout(policy, questions)
    score:  rewards and metrics are pure functions of the episodes
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from harness.core.config import NoiseConfig, TaskConfig
from harness.data.loading import Question, TaskData
from harness.data.search import SearchRequest, SearchTool
from harness.episode.protocol import Action, Tags, parse_turn, truncate_after_action
from harness.episode.record import Episode, Turn, squash


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int


class Policy(Protocol):
    """Anything that writes the next assistant message for a batch of live episodes."""

    name: str

    def generate(self, episodes: list[Episode], max_new_tokens: int) -> list[Generation]:
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
    def __init__(self, task: TaskConfig, search_tool: SearchTool, judge_fn: Callable[[str | None, str], dict]):
        self.task = task
        self.tool = search_tool
        self.judge_fn = judge_fn
        p = task.protocol
        self.tags = Tags(p.think_tag, p.search_tag, p.answer_tag, p.information_tag)
        self.max_turns = p.max_turns
        self.max_new_tokens = p.max_new_tokens
        self.max_episode_tokens = p.max_episode_tokens
        self.timers = Timers()

    @classmethod
    def from_task(cls, task: TaskConfig, data: TaskData, *, noise: NoiseConfig | None = None, seed: int = 0,
                  retriever=None, retriever_name: str | None = None, k: int | None = None,
                  max_turns: int | None = None) -> "Environment":
        """Factory: builds the retriever (unless given), search tool and judge from the task config."""
        from harness.data.retrieval import build_retriever
        from harness.scoring.judge import judge

        if task.hooks.environment and cls is Environment:
            from harness.core.config import import_hook

            sub = import_hook(task.hooks.environment, task.source)
            return sub.from_task(task, data, noise=noise, seed=seed, retriever=retriever,
                                 retriever_name=retriever_name, k=k, max_turns=max_turns)
        r = task.retrieval
        if retriever is None:
            retriever = build_retriever(retriever_name or r.retriever, data.corpus, stopwords=r.bm25_stopwords,
                                        dense_model=r.dense_model, batch_size=r.dense_batch_size)
        tool = SearchTool(retriever, data.corpus, k=k or r.k, noise=noise or task.noise, seed=seed,
                          result_template=task.prompt.result)
        jc = task.judge

        def judge_fn(pred: str | None, gold: str) -> dict:
            return judge(pred, gold, rule=jc.rule, f1_threshold=jc.f1_threshold).to_dict()

        env = cls(task, tool, judge_fn)
        if max_turns:
            env.max_turns = max_turns
        return env

    # ------------------------------------------------------------------ episode construction
    def new_episode(self, q: Question) -> Episode:
        pr = self.task.prompt
        messages = [{"role": "system", "content": pr.system}, {"role": "user", "content": pr.user.format(question=q.question)}]
        n = self.tool.noise
        return Episode(question=q, messages=messages, noise={"level": n.level, "modes": list(n.modes), "seed": self.tool.seed})

    def _gold_in(self, ep: Episode, result) -> bool:
        gold = squash(ep.question.gold_paragraph)
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
            text = truncate_after_action(gen.text, self.tags)
            action = self.resolve_action(ep, parse_turn(text, self.tags))
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
                gens = policy.generate(live, self.max_new_tokens)
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
