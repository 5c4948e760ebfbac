"""Log output: one structlog configuration for our lines and for stdlib loggers (aiohttp).

Every line goes to stderr, as JSON lines in production (``log_format="json"``, or ``auto``
when stderr is not a terminal) and as coloured key=value text on a terminal. Context bound
with ``structlog.contextvars`` (request id, session id) is merged into every line.

aiohttp's own loggers pass through the same renderer at WARNING and above only: we write our
own line per request, so ``web.run_app`` must be called with ``access_log=None``, otherwise
aiohttp would add a second, differently formatted access line at INFO.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import Processor

from app.process.settings import Settings

#: Reused by every line; ``repr`` makes values JSON cannot express (exceptions, objects)
#: readable instead of failing the log call.
_JSON = msgspec.json.Encoder(enc_hook=repr)


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


def _shared_processors() -> list[Processor]:
    """What both our lines and stdlib records get before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(as_json: bool, stream: TextIO) -> list[Processor]:
    """The final processors; tracebacks become a string field in JSON, text on a terminal."""
    if as_json:
        return [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_serializer),
        ]
    return [structlog.dev.ConsoleRenderer(colors=stream.isatty())]


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
    a cached logger keeps the configuration it was first used with.

    Raises:
        ValueError: ``settings.log_level`` is not a level name.
    """
    level = parse_level(settings.log_level)
    stream = sys.stderr
    renderer = _renderer(wants_json(settings.log_format, stream), stream)
    structlog.configure(
        processors=[*_shared_processors(), structlog.processors.StackInfoRenderer(), *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache_loggers,
    )
    _route_stdlib(level, renderer, stream)
