"""OpenAI-compatible backend: any served model behind ``POST {base_url}/chat/completions``.

``harness run --backend openai --base-url URL --model NAME`` reaches vLLM, llama.cpp's server, SGLang,
TGI, LiteLLM, Ollama or a hosted API through one protocol, the way lm-eval's ``local-chat-completions``
and inspect_ai's providers do. The server applies the model's chat template.

Each turn of a batch of live episodes is one request per episode, sent concurrently (at most
``concurrency`` in flight) with the task's stop strings, ``max_tokens``, ``temperature``, ``top_p`` and
``seed`` (servers that honour a seed make sampled runs repeatable). Episodes of one batch whose requests
are identical (the same messages and parameters) share one request with ``n`` choices; a server that
returns fewer choices than asked is asked again for the rest, one seed further on per choice.

Robustness:

* **retries** on 429 and 5xx (a ``Retry-After`` header is honoured) and on dropped or refused
  connections and timeouts, with exponential back-off and jitter, ``max_retries`` times;
* **timeout** per request (``request_timeout`` seconds, default 600 as in the ``openai`` client: a server
  that answers one request at a time, such as llama.cpp's with one slot, queues the others, and a
  timed-out request is sent again while the server still computes the first; measured here, 8
  concurrent requests to a one-slot server on two loaded cores waited past 120 s);
* **one-line errors** (:class:`ServerError`): a dead server, a URL that is not an OpenAI-compatible API, a
  model the server does not serve, or a request it refuses, each named with the URL and what failed;
* **API key** from an environment variable (``--api-key-env``, default ``OPENAI_API_KEY``), sent as a
  bearer token and never stored: not in ``config.json``, the record, the cache or a log line.

**Response cache.** Every response is stored on disk as soon as it arrives, keyed by the sha256 of the
full request body (model, messages and every parameter; not the URL, so a restarted server on another
port still hits, and not the key), one file per request written atomically under
``$HARNESS_CACHE_DIR/openai/`` (:class:`ResponseCache`): a killed or re-run evaluation sends nothing it
already has, and two concurrent runs never see half an entry. ``--no-cache`` neither reads nor writes it.

Token usage (the server's ``prompt_tokens`` and ``completion_tokens``) comes back with each
:class:`~harness.environment.env.Generation` (``usage``); the environment sums it per episode and the
run record per policy. A cached response carries the usage it was billed with and ``cached: 1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, HarnessError
from harness.environment.env import Generation
from harness.episode.protocol import restore_stop

log = logging.getLogger(__name__)

#: Environment variable the API key is read from unless ``--api-key-env`` names another.
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: HTTP statuses worth retrying (rate limits, server errors).
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ServerError(HarnessError):
    """The server could not be reached or refused a request; the message is one line naming the URL."""


# ----------------------------------------------------------------------------- the cache
def request_key(body: dict[str, Any]) -> str:
    """The cache key of a request body: sha256 of its canonical JSON (key order does not matter).

    >>> a = request_key({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    >>> a == request_key({"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"})
    True
    >>> a == request_key({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5})
    False
    """
    canon = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class ResponseCache:
    """Responses on disk, one JSON file per request key (``ROOT/ab/abcdef....json``), written atomically.

    Safe under concurrent runs: a writer replaces a whole file (temp file + ``os.replace``), so a reader
    sees a complete entry or none; two runs that fetch the same request both write the same entry. A
    corrupt or foreign file reads as a miss and is overwritten.

    >>> import tempfile
    >>> c = ResponseCache(tempfile.mkdtemp())
    >>> body = {"model": "m", "messages": []}
    >>> c.get(body) is None
    True
    >>> c.put(body, {"choices": [{"text": "x", "finish_reason": "stop"}], "usage": {}})
    >>> c.get(body)["choices"][0]["text"], len(c)
    ('x', 1)
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        key = request_key(body)
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("response"), dict):
            return None
        return entry["response"]

    def put(self, body: dict[str, Any], response: dict[str, Any]) -> None:
        from harness.core.io import atomic_write_text

        key = request_key(body)
        entry = {"key": key, "request": body, "response": response, "stored_at": time.time()}
        atomic_write_text(self.path(key), json.dumps(entry, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR/openai`` (else ``~/.cache/harness/openai``)."""
    from harness.data.loading import cache_root

    return cache_root() / "openai"


# ----------------------------------------------------------------------------- requests
def chat_body(model: str, messages: list[dict], *, max_tokens: int, stop: Sequence[str], temperature: float,
              top_p: float, seed: int | None, n: int = 1) -> dict[str, Any]:
    """The JSON body of one chat-completions request (``stop`` left out when empty, ``n`` when 1).

    >>> chat_body("m", [{"role": "user", "content": "q"}], max_tokens=8, stop=["</answer>"], temperature=0.0,
    ...           top_p=1.0, seed=3)  # doctest: +NORMALIZE_WHITESPACE
    {'model': 'm', 'messages': [{'role': 'user', 'content': 'q'}], 'max_tokens': 8, 'temperature': 0.0,
     'top_p': 1.0, 'seed': 3, 'stop': ['</answer>']}
    """
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]
    body: dict[str, Any] = {"model": model, "messages": chat, "max_tokens": int(max_tokens),
                            "temperature": float(temperature), "top_p": float(top_p)}
    if seed is not None:
        body["seed"] = int(seed)
    if stop:
        body["stop"] = list(stop)[:4]  # the OpenAI API takes at most 4 stop sequences
    if n > 1:
        body["n"] = int(n)
    return body


def parse_response(data: Any, url: str) -> dict[str, Any]:
    """The parts of a chat-completions response the harness keeps: each choice's text and finish reason,
    and the usage. A ServerError when it is not such a response.

    >>> parse_response({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
    ...                 "usage": {"prompt_tokens": 5, "completion_tokens": 1}}, "u")
    {'choices': [{'text': 'hi', 'finish_reason': 'stop'}], 'usage': {'prompt_tokens': 5, 'completion_tokens': 1}}
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise ServerError(f"{url}: the reply is not a chat completion (no 'choices'); is the base URL an "
                          "OpenAI-compatible API (it usually ends in /v1)?")
    out = []
    for c in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        msg = c.get("message") if isinstance(c, dict) else None
        text = msg.get("content") if isinstance(msg, dict) else None
        out.append({"text": text if isinstance(text, str) else "", "finish_reason": c.get("finish_reason")})
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return {"choices": out, "usage": {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens")
                                      if isinstance(usage.get(k), (int, float))}}


def server_message(response) -> str:
    """The error message a server put in its JSON body (``{"error": {"message": ...}}``), else its text."""
    try:
        data = response.json()
    except ValueError:
        return (response.text or "").strip().splitlines()[0][:200] if (response.text or "").strip() else ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", ""))[:300]
    if isinstance(err, str):
        return err[:300]
    detail = data.get("detail") if isinstance(data, dict) else None
    return json.dumps(detail)[:300] if detail is not None else ""


def backoff_s(attempt: int, base: float, retry_after: str | None = None, cap: float = 30.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): the server's ``Retry-After`` when it gives
    seconds, else ``base * 2**(attempt-1)`` with up to 50% jitter; never more than ``cap``.

    >>> backoff_s(1, 0.5, "2"), backoff_s(3, 0.5, "120")
    (2.0, 30.0)
    >>> 2.0 <= backoff_s(3, 0.5) <= 3.0
    True
    """
    if retry_after:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:
            pass
    wait = base * 2 ** (attempt - 1)
    return min(cap, wait * (1 + 0.5 * random.random()))


@dataclass
class RequestStats:
    """What this process sent: HTTP requests (retries included), responses from the cache, retries,
    and the seconds spent waiting for responses."""

    requests: int = 0
    responses: int = 0
    cache_hits: int = 0
    retries: int = 0
    wait_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "responses": self.responses, "cache_hits": self.cache_hits,
                "retries": self.retries, "wait_s": round(self.wait_s, 3), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "errors": dict(self.errors)}


# ----------------------------------------------------------------------------- the policy
class OpenAIPolicy:
    """A :class:`~harness.environment.env.Policy` served over the OpenAI chat-completions API."""

    def __init__(self, model: str, base_url: str, *, api_key_env: str = DEFAULT_KEY_ENV, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = 0, concurrency: int = 8, timeout: float = 600.0,
                 max_retries: int = 4, backoff: float = 0.5, cache: bool = True, cache_dir: Path | str | None = None,
                 check: bool = True):
        if not base_url:
            raise ConfigError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        self.name = model
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.cache = ResponseCache(cache_dir or default_cache_dir()) if cache else None
        self.stats = RequestStats()
        if check:
            self.check_server()

    # ------------------------------------------------------------------ connection
    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _client(self, asynchronous: bool):
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        kw = {"base_url": self.base_url, "headers": self._headers(), "timeout": httpx.Timeout(self.timeout),
              "limits": limits}
        return httpx.AsyncClient(**kw) if asynchronous else httpx.Client(**kw)

    def check_server(self) -> list[str]:
        """``GET /models`` once: a dead server, a URL that is no OpenAI-compatible API, a rejected key or a
        model the server does not list is one ServerError line now, before any episode. Returns the ids listed."""
        import httpx

        url = f"{self.base_url}/models"
        try:
            with self._client(False) as client:
                r = client.get("/models")
        except httpx.HTTPError as e:
            raise ServerError(f"cannot reach the OpenAI-compatible server at {self.base_url}: "
                              f"{_transport(e)}") from None
        if r.status_code in (401, 403):
            raise ServerError(f"{url}: {r.status_code} {r.reason_phrase}: the server refused the API key "
                              f"(read from ${self.api_key_env}{'' if self._headers() else ', which is unset'})")
        if r.status_code != 200:
            raise ServerError(f"{url}: {r.status_code} {r.reason_phrase}; is {self.base_url} an OpenAI-compatible "
                              "API (the base URL usually ends in /v1)?")
        try:
            data = r.json()
            ids = [str(m["id"]) for m in data["data"]]
        except (ValueError, KeyError, TypeError):
            raise ServerError(f"{url}: the reply is not a model list; is {self.base_url} an OpenAI-compatible API "
                              "(the base URL usually ends in /v1)?") from None
        if ids and self.model not in ids:
            raise ServerError(f"{self.base_url} does not serve model {self.model!r}; it serves: {', '.join(ids[:10])}")
        return ids

    # ------------------------------------------------------------------ generation
    def generate(self, episodes, max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """One assistant message per episode (anything with ``messages``), requests sent concurrently."""
        stops = list(stop or ())
        bodies = [chat_body(self.model, e.messages, max_tokens=max_new_tokens, stop=stops,
                            temperature=self.temperature, top_p=self.top_p, seed=self.seed) for e in episodes]
        groups: dict[str, list[int]] = {}
        for i, b in enumerate(bodies):
            groups.setdefault(request_key(b), []).append(i)
        jobs = [(bodies[idx[0]], len(idx)) for idx in groups.values()]
        results = _run(self._fetch_all(jobs))
        out: list[Generation | None] = [None] * len(bodies)
        for idx, (choices, usage, cached) in zip(groups.values(), results):
            if self.temperature <= 0:   # greedy: one answer serves every identical request
                choices = [choices[0]] * len(idx)
            for j, (i, c) in enumerate(zip(idx, choices)):
                share = usage if j == 0 else {}  # a request's usage is billed once, to its first episode
                out[i] = self._generation(c, share, cached, stops, max_new_tokens, len(choices))
        return out  # type: ignore[return-value]

    def _generation(self, choice: dict, usage: dict, cached: bool, stops: list[str], max_new_tokens: int,
                    n_choices: int) -> Generation:
        text = choice["text"]
        finished = choice.get("finish_reason") != "length"
        if stops and choice.get("finish_reason") == "stop":
            text = restore_stop(text, stops)  # the API strips the stop sequence it stopped at
        if usage.get("completion_tokens") is not None and n_choices == 1:
            n_tokens = usage["completion_tokens"]
        else:
            n_tokens = len(text.split())
        u = {**usage, "requests": 1 if usage else 0, "cached": int(cached and bool(usage))}
        return Generation(text, min(int(n_tokens), max_new_tokens), finished=finished, usage=u)

    async def _fetch_all(self, jobs: list[tuple[dict, int]]) -> list[tuple[list[dict], dict, bool]]:
        sem = asyncio.Semaphore(self.concurrency)
        async with self._client(True) as client:
            tasks = [asyncio.ensure_future(self._fetch_n(client, sem, body, n)) for body, n in jobs]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _fetch_n(self, client, sem, body: dict, n: int) -> tuple[list[dict], dict, bool]:
        """``n`` choices for one request: one request asking for ``n``, then (a server that ignores ``n``)
        one more request per missing choice, each with the next seed."""
        first = chat_body_n(body, n)
        resp, cached = await self._fetch(client, sem, first)
        choices, usage = list(resp["choices"]), dict(resp["usage"])
        extra = 0
        while len(choices) < n:
            extra += 1
            more = {**body, **({"seed": body["seed"] + extra} if "seed" in body else {"harness_sample": extra})}
            r, c = await self._fetch(client, sem, more)
            choices.extend(r["choices"][: n - len(choices)])
            for k, v in r["usage"].items():
                usage[k] = usage.get(k, 0) + v
            cached = cached and c
        return choices[:n], usage, cached

    async def _fetch(self, client, sem, body: dict) -> tuple[dict, bool]:
        """One request through the cache, with retries; the parsed response and whether it was cached."""
        import httpx

        if self.cache is not None:
            hit = self.cache.get(body)
            if hit is not None:
                self.stats.cache_hits += 1
                return hit, True
        url = f"{self.base_url}/chat/completions"
        send = {k: v for k, v in body.items() if k != "harness_sample"}
        attempt = 0
        while True:
            attempt += 1
            why, retry_after = "", None
            async with sem:
                t0 = time.perf_counter()
                self.stats.requests += 1
                try:
                    r = await client.post("/chat/completions", json=send)
                except httpx.HTTPError as e:
                    why = _transport(e)
                    r = None
                finally:
                    self.stats.wait_s += time.perf_counter() - t0
            if r is not None:
                if r.status_code == 200:
                    try:
                        data = r.json()
                    except ValueError:
                        raise ServerError(f"{url}: the reply is not JSON; is {self.base_url} an OpenAI-compatible "
                                          "API?") from None
                    resp = parse_response(data, url)
                    self.stats.responses += 1
                    self.stats.prompt_tokens += resp["usage"].get("prompt_tokens", 0)
                    self.stats.completion_tokens += resp["usage"].get("completion_tokens", 0)
                    if self.cache is not None:
                        self.cache.put(body, resp)
                    return resp, False
                msg = server_message(r)
                why = f"{r.status_code} {r.reason_phrase}" + (f": {msg}" if msg else "")
                if r.status_code not in RETRY_STATUS:
                    self.stats.errors[str(r.status_code)] = self.stats.errors.get(str(r.status_code), 0) + 1
                    raise ServerError(f"{url} refused the request for model {self.model!r}: {why}")
                retry_after = r.headers.get("retry-after")
            self.stats.errors[why.split(":")[0]] = self.stats.errors.get(why.split(":")[0], 0) + 1
            if attempt > self.max_retries:
                raise ServerError(f"{url}: {why} (gave up after {attempt} attempts)")
            self.stats.retries += 1
            wait = backoff_s(attempt, self.backoff, retry_after)
            log.warning("%s: %s; retry %d of %d in %.1f s", url, why, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)


def chat_body_n(body: dict, n: int) -> dict:
    """``body`` asking for ``n`` choices (``n`` is left out when 1, so a one-choice request keeps its key)."""
    return {**body, "n": n} if n > 1 else body


def _transport(e: BaseException) -> str:
    """One phrase for a transport failure (refused, timed out, dropped), without any header."""
    import httpx

    kinds = [(httpx.ConnectTimeout, "connection timed out"), (httpx.ReadTimeout, "no response within the timeout"),
             (httpx.WriteTimeout, "timed out sending the request"), (httpx.PoolTimeout, "no free connection"),
             (httpx.ConnectError, "connection failed"),
             (httpx.RemoteProtocolError, "the server dropped the connection"),
             (httpx.ReadError, "the connection was dropped"), (httpx.WriteError, "the connection was dropped")]
    what = next((w for cls, w in kinds if isinstance(e, cls)), type(e).__name__)
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{what} ({detail})" if detail and detail.lower() not in what else what


def _run(coro):
    """Run a coroutine to completion from synchronous code (a new event loop; also inside a running one)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:
        return asyncio.run(coro)  # (outside the except clause: a failure is not chained to "no running loop")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def load(model: str, base_url: str | None = None, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
         api_key_env: str = DEFAULT_KEY_ENV, concurrency: int = 8, request_timeout: float = 600.0,
         max_retries: int = 4, cache: bool = True, **_: object) -> OpenAIPolicy:
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise ConfigError("--backend openai needs httpx: pip install 'retry-harness[openai]'") from None
    return OpenAIPolicy(model, base_url or "", api_key_env=api_key_env, temperature=temperature, top_p=top_p,
                        seed=seed, concurrency=concurrency, timeout=request_timeout, max_retries=max_retries,
                        cache=cache)
