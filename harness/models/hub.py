"""Fail fast when the Hugging Face hub cannot be reached.

Loading a hub id (``org/name``) with no network costs ``huggingface_hub``'s retries before the error
(measured: 92 s on this machine, under load, for ``harness run --model Qwen/Qwen2.5-0.5B-Instruct`` with
no DNS). :func:`offline_if_unreachable` first checks, in at most :data:`PROBE_S` seconds, whether the hub's
host resolves and accepts a connection; when it does not, it switches ``huggingface_hub`` (and so
transformers) to offline mode for this process and its children (``HF_HUB_OFFLINE=1``): a model in the
local cache still loads, any other fails at once with the one-line message of
:func:`harness.policies.hub_error_message`. Nothing is probed when ``HF_HUB_OFFLINE`` is already set, for
local paths and the harness's own models, or behind a proxy (``HTTPS_PROXY``: the hub may be reachable
only through it).
"""

from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Seconds the reachability check may take (DNS lookup and TCP connect together).
PROBE_S = 2.0
_TRUE = ("1", "true", "yes", "on")
#: Set when this process switched itself to offline mode (the error message then says why).
_probed_offline = False


def offline_env() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for offline mode."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def went_offline() -> bool:
    """True when :func:`offline_if_unreachable` found the hub unreachable in this process."""
    return _probed_offline


def looks_like_hub_id(model: str) -> bool:
    """A name only the hub can resolve: ``org/name``, not an existing path, not a GGUF file.

    >>> looks_like_hub_id("Qwen/Qwen2.5-0.5B-Instruct"), looks_like_hub_id("micro"), looks_like_hub_id("/tmp")
    (True, False, False)
    """
    if "/" not in model or model.startswith(("/", ".", "~")) or model.endswith(".gguf"):
        return False
    return not Path(model).exists()


def hub_endpoint(endpoint: str | None = None) -> tuple[str, int]:
    """(host, port) of the hub at ``endpoint`` (default ``HF_ENDPOINT``, else huggingface.co).

    >>> hub_endpoint("https://huggingface.co"), hub_endpoint("http://mirror.local:8080/")
    (('huggingface.co', 443), ('mirror.local', 8080))
    """
    url = urlparse(endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float = PROBE_S) -> bool:
    """Whether ``host`` resolves and accepts a TCP connection on ``port`` within ``timeout`` seconds.

    >>> reachable("no-such-host.invalid", 443, timeout=1.0)
    False
    """
    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = ThreadPoolExecutor(max_workers=1)   # getaddrinfo takes no timeout: bound it from outside
    try:
        return pool.submit(connect).result(timeout=timeout)
    except (OSError, FutureTimeout):
        return False
    finally:
        pool.shutdown(wait=False)


def in_hub_cache(model: str) -> bool:
    """Whether the local hub cache holds ``model``'s ``config.json`` (what loading it offline needs first)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:   # not a valid repo id: the load says so
        return True


def offline_if_unreachable(model: str) -> bool:
    """Before ``model`` is loaded: switch to offline mode when it is a hub id and the hub cannot be reached.
    Returns whether offline mode was switched on here."""
    global _probed_offline
    if not looks_like_hub_id(model) or offline_env():
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False
    host, port = hub_endpoint()
    if reachable(host, port):
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True   # read once at import; transformers asks huggingface_hub
    except ImportError:
        pass
    _probed_offline = True
    log.warning("the Hugging Face hub (%s) cannot be reached: loading %s from the local cache only "
                "(HF_HUB_OFFLINE=1)", host, model)
    return True
