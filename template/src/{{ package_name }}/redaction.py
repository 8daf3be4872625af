"""Credentials kept inside the process: redaction of answers, metric labels and log lines.

Text is redacted by the form a credential takes, not by looking for known strings: a URI's
userinfo, secret-named query parameters and ``name=value`` pairs, ``Bearer`` values. The values
of secret-named environment variables and of :func:`add_secret` are replaced wherever they
appear. Each becomes ``***``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from functools import lru_cache
from urllib.parse import quote

MASK = "***"
# Words that name a credential in query strings and `name=value` pairs.
CREDENTIAL_WORDS = (
    r"password|passwd|secret|token|signature|sig|credentials?|authorization|apikey|sas"
    r"|(?:api|access|private|hash|signing|account)[_-]?keys?"
)
# A URI's userinfo: between `scheme://` and the last `@` before the path.
USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#@\"'<>,]+(?:@[^\s/?#@\"'<>,]*)*)@")
# In a query string, a bare `key=` is an API key too (as Google's APIs name it).
QUERY_SECRET = re.compile(
    rf"([?&;][^=&#\s]*(?:{CREDENTIAL_WORDS}|key)[^=&#\s]*=)[^&#\s\"'<>]+", re.IGNORECASE
)
BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# `password=x`, `"token": "x"`, `Authorization: Basic x`, `AWS_SECRET_ACCESS_KEY=x`.
PAIR_SECRET = re.compile(
    rf"\b([\w.-]*(?:{CREDENTIAL_WORDS}))([\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:basic|bearer|digest|token)\s+)?[^\s\"',;&}]+",
    re.IGNORECASE,
)
# Environment variables that hold secrets, by the end of their name.
SECRET_SETTING = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?|CONNECTION_STRING|API_?KEYS?"
    r"|(?:ACCESS|PRIVATE|HASH|SIGNING|ACCOUNT|STORAGE)_KEY(?:_ID)?)$",
    re.IGNORECASE,
)
# Such a variable that names a file or folder holds a path, not the secret itself.
PATH_SETTING = re.compile(r"_(?:FILE|PATH|DIR)$", re.IGNORECASE)
# Shorter values are left alone: masking every "a" or "42" in a text would hide nothing.
MIN_SECRET = 6
_registered: set[str] = set()
# Pieces of a secret setting's value that are no secret (see never_secret).
_public: set[str] = set()


def add_secret(value: str) -> None:
    """Redact ``value`` wherever it appears from now on (e.g. an API key read from a file)."""
    if len(value) >= MIN_SECRET:
        _registered.add(value)


def never_secret(*words: str) -> None:
    """Leave ``words`` unmasked where they stand as pieces of a secret setting's value: e.g.
    the key names and scopes of ``SERVING_API_KEYS`` entries, which logs and answers name (the
    entries hold the keys' digests, which stay masked)."""
    _public.update(words)


def secret_values() -> frozenset[str]:
    """The current values of secret settings and registered secrets, with their pieces."""
    values = set(_registered)
    for name, value in os.environ.items():
        if value and SECRET_SETTING.search(name) and not PATH_SETTING.search(name):
            values.add(value)
            # A list of keys (`a,b`, `name:key`, JSON): each piece is a secret too.
            values.update(set(re.split(r"[\s,;:=\"'{}\[\]]+", value)) - _public)
    values.update([quote(value, safe="") for value in values])  # as written in a URI
    return frozenset(value for value in values if len(value) >= MIN_SECRET)


@lru_cache(maxsize=8)
def _values_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    # Longest first, so that a value is masked whole rather than piece by piece.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group(2).partition(":")
    # `user:password@`: the user stays; a lone `token@` is the credential itself.
    return f"{match.group(1)}{user}:{MASK}@" if colon else f"{match.group(1)}{MASK}@"


def _redact(text: str, values: re.Pattern[str] | None) -> str:
    if values is not None:
        text = values.sub(MASK, text)
    text = USERINFO.sub(_userinfo, text)
    text = QUERY_SECRET.sub(rf"\1{MASK}", text)
    text = BEARER.sub(rf"\1 {MASK}", text)
    return PAIR_SECRET.sub(rf"\1\2{MASK}", text)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``***``."""
    return _redact(text, _values_pattern(secret_values()))


def print_exception(error: BaseException) -> None:
    """Print ``error`` and its traceback to stderr as Python prints an uncaught one, redacted:
    MLflow's and the HTTP libraries' messages carry the URI they called, credentials included."""
    print(redact("".join(traceback.format_exception(error))), file=sys.stderr, end="")


# Attributes of every LogRecord; the others came with `extra=` and are redacted too.
STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class RedactionFilter(logging.Filter):
    """Redacts a record's message, ``extra`` fields, traceback and stack in place."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        values = _values_pattern(secret_values())
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it as logging does
            return True
        record.msg, record.args = _redact(message, values), None
        for name, value in list(vars(record).items()):
            if name not in STANDARD_ATTRIBUTES and value is not None:
                text = value if isinstance(value, str) else str(value)
                if (clean := _redact(text, values)) != text:
                    setattr(record, name, clean)
        if record.exc_info:
            # Formatters print `exc_text` when there is no `exc_info` to format.
            text = record.exc_text or self._formatter.formatException(record.exc_info)
            record.exc_text, record.exc_info = text, None
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, values)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, values)
        return True


_FILTER = RedactionFilter()
# Loggers that get handlers of their own (MLflow adds one to its loggers when imported).
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow", "urllib3", "alembic")


def install_log_redaction() -> None:
    """Put the one :class:`RedactionFilter` on every log handler there is now (the root's,
    uvicorn's, MLflow's, urllib3's, any logger's); call it again after a library adds one."""
    loggers = [logging.getLogger(), *map(logging.getLogger, LOGGERS)]
    loggers += [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(known, RedactionFilter) for known in handler.filters):
                handler.addFilter(_FILTER)
