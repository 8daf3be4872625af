"""API keys and their rate limit: who may call which route, and how often.

The service holds only each key's SHA-256 digest (``SERVING_API_KEYS``, ``SERVING_API_KEYS_FILE``),
so neither the environment nor a manifest holds a usable key. Keys are 256 random bits: a plain
digest cannot be reversed, and a slow password hash would only slow requests. Digests are
compared in constant time; answers and logs name a key by its name, never by its value.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from fastapi import HTTPException, status

from ..redaction import never_secret
from .settings import ServingSettings

Scope = Literal["score", "feedback", "metrics", "docs"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# What anyone may call while no key is configured (local development): all but /feedback.
OPEN_WITHOUT_KEYS: frozenset[Scope] = frozenset({"score", "metrics", "docs"})
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DIGEST_SCHEME = "sha256"
DIGEST = re.compile(DIGEST_SCHEME + r":([0-9a-f]{64})")
RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(second|minute|hour)(?:\s+burst\s+(\d+))?")
SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
LONGEST_KEY = 256  # anything longer is no key of ours: not worth hashing
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class ApiKeyError(ValueError):
    """A key entry of the settings that cannot be read; the message never holds its value."""


@dataclass(frozen=True)
class ApiKey:
    """A configured key: its name (what logs and answers show), scopes and SHA-256 digest."""

    name: str
    scopes: frozenset[Scope]
    digest: bytes = field(repr=False)


# The caller while no key is configured: it may use the open scopes, and has no rate limit.
ANONYMOUS = ApiKey("anonymous", OPEN_WITHOUT_KEYS, b"")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def entry(name: str, scopes: Iterable[str], key: str) -> str:
    """The settings entry of ``key``; ``ApiKeyError`` for a name or scope it cannot hold."""
    line = f"{name}:{','.join(sorted(set(scopes)))}:sha256:{digest(key).hex()}"
    parse_entry(line, 1)
    return line


def new_key(name: str, scopes: Iterable[str]) -> tuple[str, str]:
    """A new random key, and its entry for ``SERVING_API_KEYS``."""
    key = secrets.token_urlsafe(32)
    return key, entry(name, scopes, key)


def parse_entry(text: str, number: int) -> ApiKey:
    """One ``name:scopes:sha256:digest`` entry.

    Errors name the entry by its position only: a key pasted by mistake could stand anywhere.
    """
    name, _, rest = text.partition(":")
    where = f"API key entry {number}"
    scopes, _, stored = rest.partition(":")
    if not NAME.fullmatch(name):
        raise ApiKeyError(f"{where}: the name must be 1-64 letters, digits, '_', '.' or '-'")
    unknown = sorted(set(scopes.split(",")) - set(SCOPES))
    if unknown or not scopes:
        raise ApiKeyError(f"{where}: scopes are a comma-separated list of {', '.join(SCOPES)}")
    found = DIGEST.fullmatch(stored)
    if found is None:
        raise ApiKeyError(
            f"{where}: expected name:scopes:sha256:<64 hex digits>, the key's SHA-256 digest, "
            "never the key itself ('api-key new' prints the entry)"
        )
    chosen = frozenset(scope for scope in SCOPES if scope in scopes.split(","))
    return ApiKey(name, chosen, bytes.fromhex(found.group(1)))


def parse_keys(text: str) -> list[ApiKey]:
    """Entries separated by spaces or new lines; ``#`` starts a comment."""
    words = [word for line in text.splitlines() for word in line.partition("#")[0].split()]
    keys = [parse_entry(word, number) for number, word in enumerate(words, start=1)]
    names = [key.name for key in keys]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ApiKeyError(f"API key names must be unique: {', '.join(twice)}")
    return keys


def load_keys(settings: ServingSettings) -> list[ApiKey]:
    """The keys of ``SERVING_API_KEYS`` and of the file ``SERVING_API_KEYS_FILE``."""
    text = settings.api_keys
    if settings.api_keys_file:
        try:
            text += "\n" + Path(settings.api_keys_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ApiKeyError(
                f"SERVING_API_KEYS_FILE {settings.api_keys_file}: {type(error).__name__}"
            ) from None
    return parse_keys(text)


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests a second on average, up to ``burst`` at once."""

    rate: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"<requests>/<second|minute|hour>"`` with an optional ``" burst <requests>"``;
        empty: no limit. The burst defaults to a second's worth (at least 1)."""
        if not text.strip():
            return None
        found = RATE.fullmatch(text.strip())
        if found is None or float(found.group(1)) <= 0:
            raise ValueError(
                f"rate limit {text[:40]!r}: expected '<requests>/<second|minute|hour>' with an "
                "optional ' burst <requests>', e.g. '50/second burst 100'"
            )
        rate = float(found.group(1)) / SECONDS[found.group(2)]
        burst = int(found.group(3)) if found.group(3) else max(1, math.ceil(rate))
        return cls(rate, max(1, burst))


class RateLimiter:
    """A token bucket per key name, in this worker's memory.

    Written here rather than taken from ``limits``: that library has no token bucket (a rate
    with a burst is what the setting says), its in-memory storage runs a timer thread while
    requests arrive, and its moving window keeps an entry per request. A bucket is
    two numbers per key, and runs on the event loop, so it needs no lock.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when counted)

    def wait(self, name: str) -> float:
        """0 when ``name`` may make a request now (which takes a token), else the seconds
        until it may."""
        now = self.clock()
        tokens, then = self.buckets.get(name, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - then) * self.limit.rate)
        if tokens < 1:
            self.buckets[name] = (tokens, now)
            return (1 - tokens) / self.limit.rate
        self.buckets[name] = (tokens - 1, now)
        return 0.0


class Guard:
    """Which caller may use which scope: the app's configured keys and their rate limit."""

    def __init__(self, keys: list[ApiKey], limit: RateLimit | None = None) -> None:
        self.keys = keys
        self.limiter = RateLimiter(limit) if limit is not None else None

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> Guard:
        keys = load_keys(settings)
        # Logs and answers name keys and scopes; `SERVING_API_KEYS` is secret by its name.
        never_secret(DIGEST_SCHEME, *SCOPES, *(key.name for key in keys))
        return cls(keys, RateLimit.parse(settings.rate_limit))

    def find(self, presented: str) -> ApiKey | None:
        """The configured key with this value: every digest is compared, in constant time."""
        if len(presented) > LONGEST_KEY:
            return None
        given = digest(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(given, key.digest):
                found = key
        return found

    def admit(self, scope: Scope, presented: str | None) -> ApiKey:
        """The caller, if it may use ``scope`` now; else the ``HTTPException`` to answer
        (401 no or unknown key, 403 scope not granted, 429 over the rate limit)."""
        if not self.keys:
            if scope in OPEN_WITHOUT_KEYS:
                return ANONYMOUS
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"the {scope!r} scope needs an API key and none is configured: "
                "set SERVING_API_KEYS or SERVING_API_KEYS_FILE",
            )
        if not presented:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an API key is required: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers=CHALLENGE,
            )
        key = self.find(presented)
        if key is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers=CHALLENGE)
        if scope not in key.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"the API key {key.name!r} lacks the scope {scope!r}"
            )
        wait = self.limiter.wait(key.name) if self.limiter is not None else 0.0
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"the API key {key.name!r} is over its rate limit (SERVING_RATE_LIMIT)",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        return key
