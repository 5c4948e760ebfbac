"""Log output: one structlog configuration for our lines and for stdlib loggers (aiohttp).

Every line goes to stderr, as JSON lines in production (``log_format="json"``, or ``auto``
when stderr is not a terminal) and as coloured key=value text on a terminal. Context bound
with ``structlog.contextvars`` (request id, session id) is merged into every line.

aiohttp's own loggers pass through the same renderer at WARNING and above only: we write our
own line per request, so the server runs with ``access_log=None``, otherwise aiohttp would
add a second, differently formatted access line at INFO.

Secrets never reach the log. An unauthenticated client decides what aiohttp quotes when it
rejects a malformed request (the offending header line, ``Authorization`` included), so
every record, ours and the framework's, passes ``redact`` last before rendering: header
values of ``Authorization``/``Cookie``/``Set-Cookie``, ``Bearer``/``Basic`` credentials,
session tokens and PATs (``s.<id>.<secret>``, ``p.<id>.<secret>``), ``ST=`` cookies,
``sessionToken=`` parameters and the configured admin token. Tracebacks are rendered to
text before that step, so they are redacted too.

Exceptions nobody caught (the process's or a thread's) go through the same path instead of
Python's plain traceback printer.

Expected faults (a malformed request, a lost Redis connection) are not bugs: their stack
says nothing and a Redis restart would otherwise write thousands of them. Such records keep
one line, with the exception as an ``error`` field and no traceback.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TextIO

import msgspec
import structlog
from aiohttp.http_exceptions import BadHttpMessage
from structlog.typing import EventDict, Processor, WrappedLogger

from app.process.settings import Settings

#: Reused by every line; ``repr`` makes values JSON cannot express (exceptions, objects)
#: readable instead of failing the log call.
_JSON = msgspec.json.Encoder(enc_hook=repr)

REDACTED = "[REDACTED]"
#: Configured secrets shorter than this are not replaced literally (it would garble every
#: line that happens to contain the string); the patterns below still catch them in headers.
MIN_LITERAL_SECRET = 8
#: An expected fault's message quotes the client's bytes (up to a whole 8 KiB header line);
#: a log line needs the start of it, and redacting all of it would cost milliseconds.
MAX_ERROR_CHARS = 1000
#: Where a name starts: not inside a word, but right after an escaped line break ("\\r\\n"
#: in a repr'd request, where ``\b`` sees no boundary between "n" and the name).
_START = r"(?:(?<=\\[rn])|(?<![A-Za-z0-9_]))"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A header's whole value, as a raw line, a repr'd line (stops at an escaped \r or \n),
    # or a mapping ("'Cookie': '...'", "cookie=...").
    (
        re.compile(
            rf"(?i){_START}((?:proxy-)?authorization|(?:set-)?cookie)(['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(?!\\[rn])[^'\"\r\n])+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(rf"(?i){_START}(bearer|basic)(\s+)[^\s'\",;\\]+"), rf"\1\2{REDACTED}"),
    # Our token shapes (actors/tokens.py): the secret is base64url of 32 bytes; the prefix
    # and the id stay readable, they are what one needs to trace a request. Bounded
    # repetitions only: the text is often the client's, and must not make the regex slow.
    (
        re.compile(
            rf"{_START}([sp])\.([A-Za-z0-9_-]{{1,64}})\.[A-Za-z0-9_-]{{22,}}(?![A-Za-z0-9_-])"
        ),
        rf"\1.\2.{REDACTED}",
    ),
    (re.compile(rf"{_START}ST=[^\s'\";,\\]+"), f"ST={REDACTED}"),
    # The password of a URL (a Redis URL in a connection error): scheme://user:secret@host
    (re.compile(r"(://[^:/@\s'\"]*:)[^@/\s'\"]+@"), rf"\1{REDACTED}@"),
    (
        re.compile(rf"(?i){_START}(session_?token)(['\"]?\s*[=:]\s*['\"]?)[^\s'\";,&\\]+"),
        rf"\1\2{REDACTED}",
    ),
)
#: Event keys whose value is a secret whatever it looks like (lower case, ``-`` as ``_``).
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "cookie",
        "set_cookie",
        "session_token",
        "sessiontoken",
        "token",
        "password",
        "secret",
        "admin_token",
        "code",
        "otp",
        "master_key",
        "totp_secret",
        "recovery_codes",
    }
)
#: Exceptions whose stack is noise: the client's or the network's fault, not ours. Redis
#: exceptions are named rather than imported: app/ reaches Redis only through storage/.
_EXPECTED_FAULTS: tuple[type[BaseException], ...] = (BadHttpMessage, ConnectionError)
_EXPECTED_FAULT_NAMES = frozenset(
    {"redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError"}
)


def _json_serializer(event_dict: Any, **_: Any) -> str:
    """``JSONRenderer`` passes ``default=``, which msgspec's ``encode`` would reject."""
    return _JSON.encode(event_dict).decode()


def parse_level(name: str) -> int:
    """``"info"``/``"WARNING"``/``"warn"`` to a ``logging`` level; typos fail at start-up."""
    levels = logging.getLevelNamesMapping()
    level = levels.get(name.strip().upper())
    if level is None:
        raise ValueError(f"unknown log level {name!r}; use debug, info, warning or error")
    return level


def wants_json(log_format: str, stream: TextIO) -> bool:
    """``auto`` means JSON unless a human is watching the terminal."""
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def secret_literals(secrets: Iterable[str]) -> tuple[str, ...]:
    """The configured secrets as they may appear in a line: plain and repr-escaped."""
    found: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_LITERAL_SECRET:
            found |= {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]}
    return tuple(sorted(found, key=len, reverse=True))  # longest first: no partial leftovers


def _hinted(lowered: str) -> bool:
    """Cheap pre-check: text holding none of these cannot match any pattern.

    That is the common case, and ``in`` is far cheaper than a regex search.
    """
    return (
        "s." in lowered
        or "p." in lowered
        or "oken" in lowered
        or "uthoriz" in lowered
        or "ookie" in lowered
        or "earer" in lowered
        or "basic" in lowered
        or "st=" in lowered
        or "://" in lowered
    )


def redact(text: str, literals: Iterable[str] = ()) -> str:
    """``text`` with every credential replaced by ``[REDACTED]``.

    ``literals`` are exact secrets (see ``secret_literals``), replaced first so that no
    pattern can cut one in half and leave its tail.
    """
    literal_hit = False
    for literal in literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
            literal_hit = True
    if not literal_hit and not _hinted(text.lower()):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _secret_key(key: str) -> bool:
    return key in _SECRET_KEYS or key.lower().replace("-", "_") in _SECRET_KEYS


class Redactor:
    """The processor: redacts every value of the event dict, nested ones included.

    It runs after the traceback became the ``exception`` string and before rendering.
    Values that are neither strings nor plain scalars are rendered with ``repr`` (what the
    renderers would do anyway) and redacted as text.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.literals = secret_literals(secrets)

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            if value and _secret_key(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.value(value)
        return event_dict

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.literals)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {
                k: REDACTED if isinstance(k, str) and _secret_key(k) else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return redact(repr(value), self.literals)


def _exception(exc_info: Any) -> BaseException | None:
    """The exception an ``exc_info`` field stands for (an exception, a tuple, or True)."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def is_expected_fault(exc: BaseException) -> bool:
    if isinstance(exc, _EXPECTED_FAULTS):
        return True
    return any(
        f"{cls.__module__}.{cls.__qualname__}" in _EXPECTED_FAULT_NAMES for cls in type(exc).__mro__
    )


def _one_line(text: str) -> str:
    """``text`` on one line, at most ``MAX_ERROR_CHARS`` long.

    A cut drops the word it falls into as well, so that no secret is left half there, too
    short for the patterns to recognise it.
    """
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_CHARS:
        return text
    cut = text[:MAX_ERROR_CHARS]
    return cut[: max(cut.rfind(sep) for sep in " '\"") + 1] + "..."


def one_line_expected_faults(
    _logger: WrappedLogger, _name: str, event_dict: EventDict
) -> EventDict:
    """Replace the traceback of an expected fault by one ``error`` field on the same line."""
    exc = _exception(event_dict.get("exc_info"))
    if exc is not None and is_expected_fault(exc):
        del event_dict["exc_info"]
        event_dict.setdefault("error", _one_line(f"{type(exc).__name__}: {exc}"))
    return event_dict


def _shared_processors() -> list[Processor]:
    """What both our lines and stdlib records get before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(as_json: bool, stream: TextIO, redactor: Redactor) -> list[Processor]:
    """The final processors: tracebacks become text, everything is redacted, then rendered.

    The traceback is a string field in JSON, lines after the line on a terminal.
    """
    last: Processor
    if as_json:
        last = structlog.processors.JSONRenderer(serializer=_json_serializer)
    else:
        last = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    return [one_line_expected_faults, structlog.processors.format_exc_info, redactor, last]


class _StdlibHandler(logging.StreamHandler[TextIO]):
    """Our handler on the root logger; its own class so a reconfigure replaces only it."""


def _route_stdlib(level: int, renderer: list[Processor], stream: TextIO) -> None:
    """Send stdlib records (aiohttp, asyncio) through the same renderer, WARNING and up."""
    handler = _StdlibHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))


def configure_logging(settings: Settings, *, cache_loggers: bool = True) -> None:
    """Configure structlog and the stdlib root logger from ``log_format`` and ``log_level``.

    Call it once per process, before the first log line (each spawned worker calls it
    too). ``cache_loggers=False`` is for tests that reconfigure or use ``capture_logs``:
    a cached logger keeps the configuration it was first used with. ``admin_token`` is
    redacted wherever it appears.

    Raises:
        ValueError: ``settings.log_level`` is not a level name.
    """
    level = parse_level(settings.log_level)
    stream = sys.stderr
    configured = (
        settings.admin_token,
        settings.master_key,
        settings.master_key_old,
        settings.smtp_password,
        settings.sms_webhook_secret,
    )
    redactor = Redactor([secret for secret in configured if secret])
    renderer = _renderer(wants_json(settings.log_format, stream), stream, redactor)
    structlog.configure(
        processors=[*_shared_processors(), structlog.processors.StackInfoRenderer(), *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache_loggers,
    )
    _route_stdlib(level, renderer, stream)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    """An exception that ends the process is a log line too, redacted like every other."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, traceback)
        return
    logging.getLogger("sessiond").critical(
        "uncaught exception", exc_info=(exc_type, exc, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    logging.getLogger("sessiond").error(
        "uncaught exception in thread %s",
        getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
