"""Typed application state keys: what the composition root hands to the transports."""

from __future__ import annotations

from aiohttp import web

from app.services.auth import Authenticator
from app.services.catalog import Services
from app.services.ports import SessionReads

SERVICES = web.AppKey("SERVICES", Services)
AUTHENTICATOR = web.AppKey("AUTHENTICATOR", Authenticator)
#: What the readiness probe pings.
STORAGE: web.AppKey[SessionReads] = web.AppKey("STORAGE")
