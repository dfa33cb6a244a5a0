"""One episode loop (``Environment.run_episodes``) for evaluation, training and single-shot prompts.

Unit: the one-turn environment with a scripted policy. Integration: the loop on the hand-written
corpus (custom tags, reseeding); the HF backend on a tiny Llama built from a config (stop strings);
the micro policy's training rollout replayed through evaluation, and its trace frozen against the
trace the separate training loop produced before the loops were merged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from tiny_env import QUESTION, Says, tiny_env

from harness.core.config import NoiseConfig, load_task
from harness.environment.env import Generation, OneTurnEnvironment
from harness.episode.record import Episode
from harness.scoring.judge import judge

SEARCH = "<think>look it up</think><search>oxygen tank 2 pressure</search>"


# ----------------------------------------------------------------------------- stop strings and reseeding


@pytest.mark.integration
def test_stop_strings_come_from_the_task_tags():
    """A task whose tags are <query>/<final> stops at its own closing tags, not at </search> or </answer>."""
    env = tiny_env(stop_after_action=True, search_tag="query", answer_tag="final")
    assert env.stop_strings == ["</query>", "</final>"]
    search = "<think>t</think><query>oxygen tank 2 pressure</query>"
    answer = "<think>t</think><final>55:54:53</final>"
    policy = Says(search + "<search>x</search> more", answer + "</answer> trailing")
    ep = env.rollout(policy, [QUESTION])[0]
    assert policy.stops == [["</query>", "</final>"]] * 2           # what every backend is told
    assert [t.text for t in ep.turns] == [search, answer]            # cut at the task's own tags
    assert ep.turns[0].search.query == "oxygen tank 2 pressure" and ep.correct
    assert tiny_env(stop_after_action=False, search_tag="query").stop_strings == []


def _noisy_env(seed: int = 0):
    env = tiny_env(max_turns=3)
    env.tool.noise = NoiseConfig(level=0.5, modes=("drop_gold",))
    env.reseed(seed)
    return env


QUESTIONS = [dataclasses.replace(QUESTION, qid=f"q{i}") for i in range(12)]


def _draws(env) -> list[list[bool]]:
    return [[t.gold_seen for t in ep.turns] for ep in env.rollout(Says(SEARCH), QUESTIONS)]


@pytest.mark.integration
def test_reseed_redraws_the_noise_reproducibly():
    env = _noisy_env()
    env.reseed(1)
    first = _draws(env)
    assert _draws(env) == first                       # the same seed replays the same draws
    env.reseed(2)
    other = _draws(env)
    assert other != first                             # another seed draws other noise
    assert _draws(_noisy_env(2)) == other             # reseeding = building the environment with that seed
    assert any(False in d for d in first) and any(True in d for d in first)  # noise did drop the gold (or not)
    assert env.new_episode(QUESTION).noise["seed"] == 2


# ----------------------------------------------------------------------------- one-turn environment


@pytest.mark.unit
def test_one_turn_environment_reads_replies_by_the_single_shot_rule():
    env = OneTurnEnvironment(load_task("apollo3"), lambda p, g: judge(p, g).to_dict(), max_new_tokens=7)
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "Question: when?"}]
    replies = ["<think>x</think><answer>55:54:53", "<think>x</think><search>tank", "no tags",
               "<think>x</think><answer>55:54:53</answer> more"]

    class Replies:
        name = "replies"

        def __init__(self):
            self.calls = []

        def generate(self, episodes, max_new_tokens, stop=()):
            self.calls.append((len(episodes), max_new_tokens, list(stop)))
            return [Generation(r, 3) for r in replies]

    policy = Replies()
    episodes = env.run_episodes(policy, [env.episode(QUESTION, chat) for _ in replies])
    assert policy.calls == [(4, 7, ["</search>", "</answer>"])]      # one turn, the task's closing tags
    assert [ep.turns[0].text for ep in episodes] == replies           # the reply as generated
    assert [ep.end_reason for ep in episodes] == ["answer", "max_turns", "no_action", "answer"]
    assert [ep.answer for ep in episodes] == ["55:54:53", None, None, "55:54:53"]  # cut answer counts
    assert [ep.correct for ep in episodes] == [True, False, False, True]
    assert all(len(ep.messages) == 3 for ep in episodes)             # no <information> for the search
    assert chat == [{"role": "system", "content": "s"}, {"role": "user", "content": "Question: when?"}]


# ----------------------------------------------------------------------------- the HF backend


@pytest.fixture(scope="module")
def tiny_lm():
    """A 1-layer Llama built from a config, with a byte-level tokenizer (chat template included)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models.rng import seeded
    from harness.models.tiny import train_tokenizer

    texts = ["the oxygen tank pressure was normal", "the crew searched again and found the value"] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with seeded(0):
        model = LlamaForCausalLM(cfg)
    return model, tok


def _stop_inside(tok, ids: list[int]) -> tuple[str, int]:
    """A stop string the generation reaches mid-way, and the shortest prefix of ``ids`` that holds it."""
    text = tok.decode(ids)
    stop = next(text[i : i + 2] for i in range(len(text) // 3, len(text) - 2)
                if text[i : i + 2].isascii() and text[i : i + 2].isalnum())
    return stop, next(k for k in range(1, len(ids) + 1) if stop in tok.decode(ids[:k]))


@pytest.mark.integration
def test_hf_backend_stops_at_the_strings_it_is_given(tiny_lm):
    """Both paths of the one backend (conversations for evaluation, token contexts for training) stop at
    the strings the environment passes, and only there."""
    import torch

    from harness.policies.hf import HFPolicy, SamplingConfig
    from harness.train.tokens import ChatGlue

    model, tok = tiny_lm
    chat = [{"role": "system", "content": "answer"}, {"role": "user", "content": "the oxygen tank pressure"}]
    ep = Episode(QUESTION, chat)
    greedy = HFPolicy("tiny", device="cpu", model=model, tokenizer=tok)
    free = greedy.generate([ep], 24)[0]
    ids = tok(free.text, add_special_tokens=False)["input_ids"]
    assert free.n_tokens == 24 and "</answer>" not in free.text
    stop, k = _stop_inside(tok, ids)
    cut = greedy.generate([ep], 24, stop=[stop])[0]
    assert free.text.startswith(cut.text) and stop in cut.text and cut.n_tokens < 24

    sampler = HFPolicy("tiny", device="cpu", model=model, tokenizer=tok, sampling=SamplingConfig(temperature=1.0))
    context = ChatGlue(tok).prompt_ids(chat)
    torch.manual_seed(3)
    free = sampler.sample([context], 24)[0]
    assert free.ids is not None and len(free.ids) == len(free.logprobs) == free.n_tokens
    stop, k = _stop_inside(tok, free.ids)
    torch.manual_seed(3)
    cut = sampler.sample([context], 24, stop=[stop])[0]
    assert cut.ids == free.ids[:k] and cut.logprobs == pytest.approx(free.logprobs[:k]) and cut.finished
    assert stop in cut.text and stop not in tok.decode(cut.ids[:-1])


# ----------------------------------------------------------------------------- training = evaluation loop


@pytest.fixture(scope="module")
def micro(data):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.data.loading import load_task_data
    from harness.models.resolve import resolve_model_path

    task = load_task("apollo3_micro")
    mdata = load_task_data(task)
    path = resolve_model_path("micro", mdata.corpus)
    torch.set_num_threads(1)
    return (task, mdata, AutoTokenizer.from_pretrained(path),
            AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32))


def _micro_setup(micro):
    """The micro task's environment (noise 0.5, seed 1) and a training rollout over two questions."""
    from harness.environment.env import Environment
    from harness.train.rollout import EpisodeRollout

    task, mdata, tok, _ = micro
    env = Environment.from_task(task, mdata, noise=NoiseConfig(level=0.5, modes=("drop_gold",)), seed=1)
    qs = mdata.split("train")[:2]
    ro = EpisodeRollout(env, tok, qs, task.presets["rezero"].reward_weights, num_generations=2, seed=1)
    return env, ro, [q for q in qs for _ in range(2)]


def _micro_rollout(micro, step: int = 3):
    env, ro, questions = _micro_setup(micro)
    episodes, traces, _ = ro.run(micro[3], questions, step=step)
    return env, ro, episodes, traces


class Replay:
    """Plays back, episode by episode, the turns a training rollout sampled."""

    name = "replay"

    def __init__(self, turns: dict[int, list]):
        self.turns = turns

    def generate(self, episodes, max_new_tokens, stop=()):
        return [Generation(self.turns[id(ep)][len(ep.turns)].text, self.turns[id(ep)][len(ep.turns)].n_tokens)
                for ep in episodes]


@pytest.mark.integration
def test_training_rollout_is_the_evaluation_loop(micro):
    """A training rollout's episodes are what the evaluation loop makes of the same generations: same
    searches, noise, code words, judge and rewards (a fresh environment, reseeded as training reseeds)."""
    from harness.scoring.rewards import score_episode
    from harness.train.rollout import step_seed

    tok = micro[2]
    env, ro, trained, traces = _micro_rollout(micro, step=3)
    assert env.timers.turns == max(len(ep.turns) for ep in trained)  # the turns went through run_episodes
    assert any(ep.n_searches >= 2 for ep in trained), "no retry: the comparison would prove little"

    fresh, _, questions = _micro_setup(micro)  # set up as the training's (the same code-word counters)
    fresh.reseed(step_seed(1, 3, salt=1))
    replayed = [fresh.new_episode(q) for q in questions]
    fresh.run_episodes(Replay({id(r): t.turns for r, t in zip(replayed, trained)}), replayed)
    for ep in replayed:
        ep.rewards = score_episode(ep, ro.weights, ro.semantics)
    assert [ep.to_dict() for ep in replayed] == [ep.to_dict() for ep in trained]
    for ep, tr in zip(trained, traces):  # the model's tokens are the turns, the rest is the chat glue
        spans, start = [], 0
        for m, n in _runs(tr.env_mask):
            if m:
                spans.append(tok.decode(tr.completion_ids[start : start + n]).removesuffix(tok.eos_token))
            start += n
        assert spans == [t.text for t in ep.turns]


#: The micro policy's rollout (seed 1, step 3, noise 0.5, two questions x two generations) as the training
#: loop wrote it before it became an adapter of Environment.run_episodes (commit 4edcb67): turn texts, the
#: env_mask as runs, the prompt length, and a hash of prompt ids, completion ids, mask and logprobs (4 places).
FROZEN = [
    (["<think>search the words</think>\n<search> #1 #2 #3 #4</search>",
      "<think>no value shown, answer anyway</think>\n<answer>«»</answer>"],
     [(1, 24), (0, 40), (1, 21), (0, 1)], 122, "c082656dbd409f28"),
    (["<think>search the words</think>\n<search> #1 #2 #3 #4</search>",
      "<think>no value shown, answer anyway</think>\n<answer>«»</answer>"],
     [(1, 24), (0, 40), (1, 21), (0, 1)], 122, "c082656dbd409f28"),
    (["<think>search the words</think>\n<search> #1 #2 #3 #4</search>",
      "<think>no value shown, answer anyway</think>\n<answer>«»</answer>"],
     [(1, 24), (0, 105), (1, 21), (0, 1)], 124, "9a0da9da382d64c0"),
    (["<think>search the words</think>\n<search> #1 #2 #3 #4</search>",
      "<think>no value shown, search again</think>\n<search> #2 #3 #4</search>",
      "<think>the value is marked</think>\n<answer>«»</answer>"],
     [(1, 24), (0, 105), (1, 23), (0, 105), (1, 17), (0, 1)], 124, "11a6b9564c62057a"),
]


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for m in mask:
        if out and out[-1][0] == m:
            out[-1][1] += 1
        else:
            out.append([m, 1])
    return [tuple(r) for r in out]


@pytest.mark.integration
def test_micro_rollout_trace_is_unchanged(micro):
    _, _, episodes, traces = _micro_rollout(micro)
    got = [([t.text for t in ep.turns], _runs(tr.env_mask), len(tr.prompt_ids),
            hashlib.sha256(json.dumps([tr.prompt_ids, tr.completion_ids, tr.env_mask,
                                       [round(x, 4) for x in tr.logprobs]]).encode()).hexdigest()[:16])
           for ep, tr in zip(episodes, traces)]
    assert got == FROZEN
    assert [ep.correct for ep in episodes] == [False, False, False, True]
