"""Token-level pieces of a multi-turn rollout: the chat-template glue between turns and turn sampling.

An episode's tokens are built incrementally, never by re-tokenizing the finished conversation, so
the ids TRL trains on are exactly the ids the model sampled (BPE merges across a turn boundary can
differ from a fresh tokenization) and every turn was generated from exactly the context the trainer
will score:

    prompt_ids      chat template of [system, user] with the generation prompt
    completion_ids  turn 1 (sampled)  | glue: end-of-turn, <information> user message, assistant header |
                    turn 2 (sampled)  | glue ... | last turn (sampled) | end-of-turn
    env_mask        1 ............... | 0 .................................................... | 1 ... | 0

The glue is whatever the tokenizer's chat template writes between the assistant's text and the next
assistant text, found by rendering the conversation with and without the new messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class TemplateError(RuntimeError):
    """The chat template rewrites earlier turns, so a conversation cannot be extended token by token."""


@dataclass
class Trace:
    """The token record of one episode, in the shape TRL's ``rollout_func`` returns."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)

    def add_model(self, ids: list[int], logprobs: list[float]) -> None:
        self.completion_ids += ids
        self.logprobs += logprobs
        self.env_mask += [1] * len(ids)

    def add_env(self, ids: list[int]) -> None:
        self.completion_ids += ids
        self.logprobs += [0.0] * len(ids)
        self.env_mask += [0] * len(ids)

    @property
    def context(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


class ChatGlue:
    """Renders conversations with the tokenizer's chat template and returns the ids between turns."""

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError("the tokenizer has no chat template; harness train needs one to build episodes")
        self.tok = tokenizer
        self.eos_text = tokenizer.eos_token
        self.eos_id = tokenizer.eos_token_id

    def render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.encode(self.render(messages, True))

    def _closing(self, prev: list[dict], asst: dict) -> str:
        head, closed = self.render(prev, True), self.render(prev + [asst], False)
        content = asst["content"]
        if closed.startswith(head):
            rest = closed[len(head):]
            for c in (content, content.strip()):  # some templates trim the content
                if rest.startswith(c):
                    return rest[len(c):]
        raise TemplateError("the chat template does not render an assistant turn as generation prompt + text; "
                            "multi-turn token-level rollouts are not possible with it")

    def _opening(self, prev: list[dict], asst: dict, nxt: dict) -> str:
        closed, opened = self.render(prev + [asst], False), self.render(prev + [asst, nxt], True)
        if not opened.startswith(closed):
            raise TemplateError("the chat template rewrites earlier turns when a message is added")
        return opened[len(closed):]

    def after_turn(self, messages: list[dict], model_eos: bool, continues: bool) -> list[int]:
        """Environment ids after the last assistant turn of ``messages``.

        ``model_eos``: the model sampled its end-of-turn token itself (it is then not repeated).
        ``continues``: the next message (the ``<information>`` block) and the assistant header follow;
        otherwise only the end-of-turn closing, cut after its end-of-sequence token, so TRL does not
        count a finished episode as truncated.
        """
        a = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prev, asst = messages[:a], messages[a]
        closing = self._closing(prev, asst)
        if model_eos and self.eos_text and closing.startswith(self.eos_text):
            closing = closing[len(self.eos_text):]
        if continues:
            return self.encode(closing + self._opening(prev, asst, messages[a + 1]))
        ids = self.encode(closing)
        if self.eos_id in ids:
            ids = ids[: len(ids) - ids[::-1].index(self.eos_id)]
        return ids


@dataclass
class Sampled:
    """One sampled assistant turn: its ids, the sampling logprob of each, and whether it ended on EOS."""

    ids: list[int]
    logprobs: list[float]
    eos: bool
    text: str
    #: ended on EOS or a stop string (False: cut off by max_new_tokens)
    finished: bool = True


class TurnSampler:
    """Samples one assistant turn for a batch of token contexts, with the logprob of every sampled token.

    Logprobs are ``log_softmax(logits / temperature)`` of the raw logits (no top-p/top-k), which is
    what TRL recomputes for the same tokens. The template's structural special tokens (BOS, padding,
    role headers) are suppressed so a turn is always plain text plus, at most, an end-of-turn token.
    """

    def __init__(self, tokenizer, stop_strings: list[str], temperature: float = 1.0, top_p: float = 1.0):
        self.tok = tokenizer
        self.stops = stop_strings
        self.temperature = temperature
        self.top_p = top_p
        eos = tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.suppress = sorted(set(tokenizer.all_special_ids) - self.eos_ids)

    def sample(self, model, contexts: list[list[int]], max_new_tokens: int) -> list[Sampled]:
        import torch
        from transformers import GenerationConfig

        width = max(len(c) for c in contexts)
        ids = torch.tensor([[self.pad_id] * (width - len(c)) + c for c in contexts], device=model.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=model.device)
        gc = GenerationConfig(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0,
                              max_new_tokens=max_new_tokens, stop_strings=self.stops or None, pad_token_id=self.pad_id,
                              eos_token_id=sorted(self.eos_ids), suppress_tokens=self.suppress or None,
                              output_logits=True, return_dict_in_generate=True)
        try:
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc, tokenizer=self.tok)
        except RuntimeError as e:
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise Diverged("model weights are not finite (NaN/inf); generation impossible") from e
            raise
        new = out.sequences[:, width:]
        lps = torch.stack([torch.log_softmax(step.float() / self.temperature, dim=-1)
                           .gather(-1, new[:, i : i + 1]).squeeze(-1) for i, step in enumerate(out.logits)], dim=1)
        return [self._cut(row, lp) for row, lp in zip(new.tolist(), lps.tolist())]

    def _cut(self, row: list[int], lps: list[float]) -> Sampled:
        """Keep the turn up to its first EOS or the end of its first stop string (generate pads after)."""
        n = next((i + 1 for i, t in enumerate(row) if t in self.eos_ids), len(row))
        stopped = n < len(row) or (bool(row) and row[-1] in self.eos_ids)
        if any(s in self.tok.decode(row[:n]) for s in self.stops):
            lo, hi = 1, n  # smallest prefix holding a stop string: the predicate is monotone in the length
            while lo < hi:
                mid = (lo + hi) // 2
                if any(s in self.tok.decode(row[:mid]) for s in self.stops):
                    hi = mid
                else:
                    lo = mid + 1
            n, stopped = lo, True
        ids = row[:n]
        eos = bool(ids) and ids[-1] in self.eos_ids
        if any(not math.isfinite(x) for x in lps[:n]):
            raise Diverged("non-finite sampling logprobs")
        text = self.tok.decode(ids[:-1] if eos else ids, skip_special_tokens=False)
        return Sampled(ids, lps[:n], eos, text, finished=stopped)


class Diverged(RuntimeError):
    """Training produced non-finite weights, logits or loss."""
