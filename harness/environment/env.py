"""The search environment: batched multi-turn rollouts of any policy over task questions.

:meth:`Environment.run_episodes` is the one episode loop of the harness: ``harness run``, evaluation
during training, GRPO's training rollouts (:mod:`harness.train.rollout`) and lm-eval's single-shot
variants (:class:`OneTurnEnvironment`) all play their episodes through it. Each turn:

    generate   every live episode's next assistant message, in one ``policy.generate`` call, with the
               environment's stop strings (:attr:`Environment.stop_strings`, the task's closing tags)
    step       parse each message (:meth:`Environment.read_turn`), answer the searches in one batched
               retriever call (:meth:`Environment.respond`), end episodes by rule
    finish     judge the episodes that ended
    hooks      ``hook(episodes, generations)`` for the turn's episodes (e.g. the training trace, which
               appends the model's token ids and the chat template's glue)

Malformed output never raises: the turn's :class:`~harness.episode.protocol.Action` records the
problems and the episode ends or goes on by rule.

The protocol (``protocol.stop_after_action`` of the task, overridable per run):

``True``   backends stop generating at the first ``</search>`` or ``</answer>`` (text past it is
           cut); that first action is the turn's action (Search-R1);
``False``  the whole message is kept (backends stop only at end of turn or ``max_new_tokens``) and
           acted on as ReZero's agent acts: a message with any complete ``<search>`` searches its last
           query and the episode goes on; any other message ends the episode (on its first
           ``<answer>``, if any). Rewards see the whole message, as ReZero's do.

    setup:  env = Environment.from_task(task, data, noise=..., seed=...)
    run:    episodes = env.rollout(policy, questions)       # = env.run_episodes(policy, new episodes)
    reseed: env.reseed(seed)                                # draw the search noise from another seed
    score:  rewards and metrics are pure functions of the episodes
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from harness.core.config import NoiseConfig, TaskConfig
from harness.data.loading import Question, TaskData
from harness.data.search import SearchRequest, SearchTool
from harness.episode.protocol import Action, Tags, action_stops, parse_turn, restore_stop, truncate_after_action
from harness.episode.record import Episode, Turn, squash


@dataclass(frozen=True)
class Generation:
    """One generated assistant message.

    ``text`` and ``n_tokens`` are all the environment reads. A backend that samples token by token for
    training also returns the turn's token ``ids`` (the end-of-turn token included when sampled), the
    sampling ``logprobs`` of those ids, whether the last id is the end-of-turn token (``eos``) and
    whether the turn ended on it or on a stop string (``finished``; False: cut by ``max_new_tokens``).
    A served backend also returns the server's token ``usage`` of the turn (``prompt_tokens``,
    ``completion_tokens``, ``requests``, ``cached``), which the environment adds to the episode's.
    """

    text: str
    n_tokens: int
    ids: list[int] | None = None
    logprobs: list[float] | None = None
    eos: bool = False
    finished: bool = True
    usage: dict[str, int] | None = None


class Policy(Protocol):
    """Anything that writes the next assistant message for a batch of live episodes.

    ``stop``: strings at which to stop generating (kept in the output); empty means stop only at the
    end of the turn (or ``max_new_tokens``). The environment passes its :attr:`~Environment.stop_strings`.
    """

    name: str

    def generate(self, episodes: list[Episode], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        ...


#: A per-turn hook of :meth:`Environment.run_episodes`: called with the turn's episodes (after the
#: environment's step, the ended ones judged) and the generations they were played with.
TurnHook = Callable[[list[Episode], list[Generation]], None]


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
        """Where a backend stops generating a turn: the task's closing action tags, or only at its end.

        >>> from harness.core.config import load_task
        >>> task = load_task("apollo3")
        >>> Environment(task, None, None, stop_after_action=True).stop_strings
        ['</search>', '</answer>']
        >>> Environment(task, None, None, stop_after_action=False).stop_strings
        []
        """
        return action_stops(self.tags) if self.stop_after_action else []

    def reseed(self, seed: int) -> None:
        """Draw the search noise (and a task environment's per-episode values) from ``seed`` from now on.

        Noise is drawn per search from ``(seed, question id, call index)``, so the same seed replays the
        same draws (training reseeds every step: fresh noise per step, the same on a resumed run).
        """
        self.tool.seed = seed

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
            retriever = build_retriever(r, data.corpus, retriever_name)
        pr = task.prompt
        tool = SearchTool(retriever, data.corpus, k=k or r.k, noise=noise or task.noise, seed=seed,
                          result_template=pr.result, result_separator=pr.result_separator, no_results=pr.no_results)
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
        messages = [{"role": "system", "content": pr.system},
                    {"role": "user", "content": pr.user.format(question=q.question)}]
        n = self.tool.noise
        return Episode(question=q, messages=messages,
                       noise={"level": n.level, "modes": list(n.modes), "seed": self.tool.seed})

    def episode_question(self, q: Question, noise: dict) -> Question:
        """The question as an episode recorded with ``noise`` (its ``samples.jsonl`` row's) was played: what
        re-scoring a saved episode judges and rewards against. The base environment plays the question
        as it is; a task's environment that changes it per episode (apollo3_micro's per-episode value)
        rebuilds that episode's version from the record."""
        return q

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

    # ------------------------------------------------------------------ one turn
    def read_turn(self, ep: Episode, gen: Generation) -> tuple[str, Action]:
        """The text a turn keeps of a generation and the action it carries out (cut after the first
        action under ``stop_after_action``; a task's environment may resolve the action further)."""
        text = truncate_after_action(gen.text, self.tags) if self.stop_after_action else gen.text
        return text, self.resolve_action(ep, parse_turn(text, self.tags, stop_after_action=self.stop_after_action))

    def respond(self, pending: list[tuple[Episode, Turn]]) -> None:
        """Answer the turns that searched: one batched retriever call, then each result as the
        ``<information>`` user message of its episode."""
        reqs = [SearchRequest(t.action.query or "", ep.question.qid, ep.question.gold_chunk_ids, ep.n_searches - 1)
                for ep, t in pending]
        results = self.tool.search_batch(reqs)
        for (ep, turn), res in zip(pending, results):
            turn.search = res
            turn.gold_seen = self._gold_in(ep, res)
            info = self.task.prompt.information.format(results=self.format_results(ep, res))
            ep.messages.append({"role": "user", "content": info})

    def step(self, episodes: list[Episode], generations: list[Generation]) -> None:
        """Apply one turn of generations to live episodes: parse, search (batched), end or continue."""
        pending: list[tuple[Episode, Turn]] = []
        for ep, gen in zip(episodes, generations):
            text, action = self.read_turn(ep, gen)
            turn = Turn(text=text, n_tokens=gen.n_tokens, action=action)
            ep.turns.append(turn)
            ep.messages.append({"role": "assistant", "content": text})
            if gen.usage:
                ep.add_usage(gen.usage)
            if action.kind == "answer":
                ep.end_reason = "answer"
            elif action.kind == "none":
                ep.end_reason = "no_action"
            else:
                pending.append((ep, turn))
        if pending:
            self.respond(pending)
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

    # ------------------------------------------------------------------ the loop
    def rollout(self, policy: Policy, questions: list[Question], progress: Callable[[int], None] | None = None,
                hooks: Sequence[TurnHook] = ()) -> list[Episode]:
        """New episodes of ``questions`` played to the end (:meth:`run_episodes`)."""
        episodes = [self.new_episode(q) for q in questions]
        return self.run_episodes(policy, episodes, progress, hooks)

    def run_episodes(self, policy: Policy, episodes: list[Episode], progress: Callable[[int], None] | None = None,
                     hooks: Sequence[TurnHook] = ()) -> list[Episode]:
        """Play ``episodes`` to the end: each turn, one batched ``policy.generate`` for the live episodes,
        one :meth:`step`, the ended episodes judged, then each hook with the turn's episodes and
        generations. ``progress(n)`` is told how many episodes ended in a turn."""
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
            for hook in hooks:
                hook(live, gens)
            t2 = time.perf_counter()
            self.timers.generate_s += t1 - t0
            self.timers.env_s += t2 - t1
            self.timers.turns += 1
            if progress and done_now:
                progress(len(done_now))
        return episodes


class OneTurnEnvironment(Environment):
    """One assistant message per episode and no search: single-shot prompts through :meth:`run_episodes`.

    lm-eval's variants of a task (:mod:`harness.evaluation.lmeval_tasks`) show the context in the prompt
    and take one reply. Episodes are built from given messages (:meth:`episode`); generation stops at the
    task's closing tags; a reply is read by lm-eval's rule (lm-eval strips the stop string, so a tag left
    open at the end is closed first, :func:`~harness.episode.protocol.restore_stop`), so an answer cut by
    ``max_new_tokens`` inside ``<answer>`` still counts. A search ends the episode unanswered (``max_turns``).
    The turn keeps the reply as generated.
    """

    def __init__(self, task: TaskConfig, judge_fn: Callable[[str | None, str], dict],
                 max_new_tokens: int | None = None):
        super().__init__(task, None, judge_fn, stop_after_action=True)
        self.max_turns = 1
        if max_new_tokens:
            self.max_new_tokens = max_new_tokens

    def episode(self, q: Question, messages: list[dict]) -> Episode:
        return Episode(question=q, messages=[dict(m) for m in messages])

    def read_turn(self, ep: Episode, gen: Generation) -> tuple[str, Action]:
        text = truncate_after_action(restore_stop(gen.text, self.stop_strings), self.tags)
        return gen.text, parse_turn(text, self.tags, stop_after_action=True)

    def respond(self, pending: list[tuple[Episode, Turn]]) -> None:
        """No retriever: a search is never answered (the episode ends at its one turn)."""
