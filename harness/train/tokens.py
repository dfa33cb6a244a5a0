"""Token-level pieces of a multi-turn rollout: the episode's token record and the chat-template glue between turns.

An episode's tokens are built incrementally, never by re-tokenizing the finished conversation, so
the ids TRL trains on are exactly the ids the model sampled (BPE merges across a turn boundary can
differ from a fresh tokenization) and every turn was generated from exactly the context the trainer
will score:

    prompt_ids      chat template of [system, user] with the generation prompt
    completion_ids  turn 1 (sampled)  | glue: end-of-turn, <information> user message, assistant header |
                    turn 2 (sampled)  | glue ... | last turn (sampled) | end-of-turn
    env_mask        1 ............... | 0 .................................................... | 1 ... | 0

The glue is whatever the tokenizer's chat template writes between the assistant's text and the next
assistant text, found by rendering the conversation with and without the new messages. Turns are
sampled by the Hugging Face backend (:meth:`harness.policies.hf.HFPolicy.sample`) from each
episode's :attr:`Trace.context`; :mod:`harness.train.rollout` records them here.
"""

from __future__ import annotations

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
