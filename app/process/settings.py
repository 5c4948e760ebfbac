"""Configuration: every ``SESSIOND_*`` environment variable, typed, with its default.

``Settings.from_env`` is pure (it takes the mapping); only ``app.__main__`` passes
``os.environ``. Tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

import msgspec

from actors.limits import Rate, parse_rate, parse_span_ms
from app.services.sealing import parse_master_key

PREFIX = "SESSIOND_"
#: Variables of the test harness share the prefix but are not settings of the service.
TEST_PREFIX = "SESSIOND_TEST_"
_ON_WORDS = ("1", "true", "yes", "on")
_SWITCH_WORDS = ("", "auto", "0", "false", "no", "off", *_ON_WORDS)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One field per ``SESSIOND_<FIELD>`` variable (upper-cased)."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: Redis/Valkey URL (redis://, rediss://, unix://). Empty: start an embedded Valkey.
    redis_url: str = ""
    #: Where the embedded Valkey keeps its socket, AOF and logs, and where admin.pat goes.
    data_dir: str = "./var"
    #: Worker processes sharing the port (SO_REUSEPORT); stateless apart from Redis.
    workers: int = 1
    #: Ensured at start as a PAT of an IAM_OWNER machine user ("admin").
    admin_token: str = ""
    #: Tenant id; sessions' resourceOwner. Empty: generated once and kept in Redis.
    instance_id: str = ""
    #: Domain suffix of organization domains (login names ``user@<org>.<domain>``).
    domain: str = "localhost"
    #: Failed password checks before a user is locked; 0 = lockout off.
    lockout_max_password_attempts: int = 0
    #: Failed second-factor checks (TOTP, OTP SMS/e-mail, recovery codes) before a user is
    #: locked; 0 = lockout off.
    lockout_max_otp_attempts: int = 0
    #: AES-256-GCM key (base64 of 32 bytes) sealing TOTP seeds and keying code hashes;
    #: required with SESSIOND_REDIS_URL (dev mode keeps one in the data dir). The previous
    #: key, during a rotation, still opens what it sealed.
    master_key: str = ""
    master_key_old: str = ""
    #: Outgoing e-mail (OTP, verification and reset codes); empty host: no SMTP.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "sessiond@localhost"
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    #: Outgoing SMS: a JSON POST to this URL, signed with HMAC-SHA256 of the secret.
    sms_webhook_url: str = ""
    sms_webhook_secret: str = ""
    #: Delivery attempts of one message before it is dead-lettered.
    delivery_max_attempts: int = 8
    #: The first retry of a failed delivery waits about this long; doubling per attempt.
    delivery_backoff_ms: int = 2000
    #: How long expired sessions stay readable/listable/deletable ("1h", "90m", "300s", "300").
    expired_retention: str = "1h"
    #: A session ends this long after its last activity unless its creator says otherwise
    #: ("0" = no idle timeout; same span format).
    default_idle_timeout: str = "0"
    #: A token read records activity only when the last one is at least this old.
    activity_granularity: str = "60s"
    #: Live sessions per user; a new one ends the least recently active (0 = unlimited).
    max_sessions_per_user: int = 0
    #: The service's external base URL (``https://sso.example.com``) for the PingOne API's
    #: HAL links; empty: each request's own scheme and host.
    public_url: str = ""
    #: How long a succeeded IdP intent may be used by a session check (same span format).
    idp_intent_lifetime: str = "1h"
    #: Outgoing requests to identity providers (discovery, keys, token, userinfo) end after
    #: this many seconds.
    idp_timeout_s: float = 10.0
    #: Peers (comma list of CIDRs) whose ``X-Forwarded-For`` names the client; empty: none,
    #: the connection's address is the client's.
    trusted_proxies: str = ""
    #: A bearer token ``GET /metrics`` requires; empty: the metrics are public.
    metrics_token: str = ""
    #: Partitions of the ``sessiond:events:{p}`` streams, and their approximate cap.
    event_partitions: int = 16
    event_stream_maxlen: int = 1_000_000
    #: Write lease of one session: its TTL and how long a writer waits for it.
    lease_ttl_ms: int = 5000
    lease_wait_ms: int = 2000
    #: Session actor: idle stop (short: an idle actor keeps no lease and no cached state, only
    #: memory and GC work), mailbox bound (full → 429), and ask() deadline.
    actor_idle_s: float = 1.0
    mailbox_size: int = 256
    ask_timeout_s: float = 10.0
    #: Largest accepted request body; larger → 413.
    max_body_bytes: int = 1_048_576
    #: argon2id parameters (OWASP minimum by default) and the hashing thread pool size.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    argon2_parallelism: int = 1
    hash_threads: int = 2
    #: In-process cache of PAT callers and user views; bounds cross-worker staleness.
    cache_ttl_ms: int = 1000
    #: Interval of the expired-session sweeper.
    sweep_interval_s: float = 30.0
    #: Every Redis command is bounded by this; after ``redis_circuit_failures`` timeouts in a
    #: row the circuit opens and requests fail fast (503) for ``redis_circuit_open_ms``.
    redis_timeout_ms: int = 2000
    redis_circuit_failures: int = 3
    redis_circuit_open_ms: int = 1000
    #: > 0: every write script waits (``WAIT``) until this many replicas have it, at most
    #: ``redis_wait_timeout_ms``; fewer in time → 503 (the write did run on the primary).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 200
    #: SIGTERM: stop accepting, let in-flight requests finish within this, then exit.
    shutdown_grace_s: float = 30.0
    #: Slow clients: the request line and headers must arrive within ``http_header_timeout_s``,
    #: the body within ``http_body_timeout_s``; at most ``http_max_connections`` per worker.
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    http_max_connections: int = 1000
    #: Deepest JSON nesting accepted in a request body (free-form fields included).
    max_json_depth: int = 64
    #: Bounds of a session's metadata (keys, key length, one value, all values) and of the
    #: user agent's headers (names, values per name, bytes per value).
    max_metadata_keys: int = 100
    max_metadata_key_chars: int = 200
    max_metadata_value_bytes: int = 4096
    max_metadata_bytes: int = 65536
    max_header_names: int = 64
    max_header_values: int = 16
    max_header_value_bytes: int = 4096
    #: Credential checks (password, later second factors) allowed per minute and burst, per
    #: user, per client IP and per caller; "0" turns one off. ``<count>/<span>`` ("20/1m").
    rate_limit_user: str = "20/1m"
    rate_limit_ip: str = "120/1m"
    rate_limit_caller: str = "6000/1m"
    #: Origins a WebAuthn assertion or registration may come from (comma list, e.g.
    #: ``https://login.example.com``). Empty: dev mode accepts ``http://localhost:<port>``;
    #: otherwise every WebAuthn check fails until it is set.
    webauthn_origins: str = ""
    #: The relying-party name authenticators show when a passkey is registered.
    webauthn_rp_name: str = "sessiond"
    #: The demo login page at ``/login``: "true", "false", or "" (on in dev mode only).
    demo_login: str = ""
    #: Set by the process itself when it started the embedded Valkey (never from the
    #: environment): dev conveniences such as writing messages to files are on.
    dev_mode: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    uvloop: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``SESSIOND_*`` variables; unknown ones are an error (typos must not pass)."""
        values = {
            name[len(PREFIX) :].lower(): value
            for name, value in environ.items()
            if name.startswith(PREFIX) and not name.startswith(TEST_PREFIX)
        }
        if "dev_mode" in values:
            raise SystemExit("invalid configuration: SESSIOND_DEV_MODE is not a setting")
        try:
            settings = msgspec.convert(values, cls, strict=False)
            settings.validate()
        except (msgspec.ValidationError, ValueError) as exc:
            raise SystemExit(f"invalid configuration: {exc}") from None
        return settings

    def validate(self) -> None:
        """Reject values that would only fail later, deep inside a request."""
        if self.workers < 1 or self.event_partitions < 1 or self.mailbox_size < 1:
            raise ValueError("workers, event_partitions and mailbox_size must be >= 1")
        if self.lease_ttl_ms < 100:
            raise ValueError("lease_ttl_ms must be >= 100")
        if self.expired_retention_ms < 0:
            raise ValueError("expired_retention must not be negative")
        self._validate_activity()
        if logging.getLevelNamesMapping().get(self.log_level.strip().upper()) is None:
            raise ValueError(f"unknown log_level {self.log_level!r}")
        for rate in (self.rate_limit_user, self.rate_limit_ip, self.rate_limit_caller):
            parse_rate(rate)
        if self.redis_timeout_ms < 1 or self.max_json_depth < 8:
            raise ValueError("redis_timeout_ms must be >= 1 and max_json_depth >= 8")
        for key in (self.master_key, self.master_key_old):
            if key:
                parse_master_key(key)
        if self.delivery_max_attempts < 1:
            raise ValueError("delivery_max_attempts must be >= 1")
        self._validate_login()
        self._validate_edge()
        if self.sms_webhook_url and not self.sms_webhook_secret:
            raise ValueError("sms_webhook_url needs sms_webhook_secret (the signature key)")
        if self.idp_intent_lifetime_ms <= 0 or not 0 < self.idp_timeout_s <= 120:
            raise ValueError("idp_intent_lifetime must be > 0 and idp_timeout_s in (0, 120]")
        self._validate_redis()

    def _validate_redis(self) -> None:
        if self.redis_wait_replicas < 0 or not (
            1 <= self.redis_wait_timeout_ms < self.redis_timeout_ms
        ):
            raise ValueError(
                "redis_wait_replicas must be >= 0 and redis_wait_timeout_ms in "
                "[1, redis_timeout_ms)"
            )
        scheme = self.redis_url.partition("://")[0] if "://" in self.redis_url else ""
        cluster = ("redis+cluster", "rediss+cluster")
        if self.redis_url and scheme not in ("redis", "rediss", "unix", *cluster):
            raise ValueError(
                "redis_url must be a redis://, rediss://, unix:// or (a Redis Cluster's seed "
                "nodes) redis+cluster:// / rediss+cluster:// URL"
            )
        seeds = self.redis_url.partition("://")[2].rpartition("@")[2].split("/", 1)[0]
        if scheme in cluster and not all(
            host and port.isdigit()
            for host, _, port in (seed.strip().rpartition(":") for seed in seeds.split(","))
        ):
            raise ValueError("redis_url: a cluster URL names host:port seed nodes, comma separated")

    def _validate_activity(self) -> None:
        spans = (self.default_idle_timeout_ms, self.activity_granularity_ms)
        if min(spans) < 0 or self.max_sessions_per_user < 0:
            raise ValueError(
                "default_idle_timeout, activity_granularity, max_sessions_per_user: not negative"
            )

    def _validate_edge(self) -> None:
        url = self.public_url
        if url and (not url.startswith(("https://", "http://")) or url.count("/") > 2):
            raise ValueError("public_url must be scheme://host[:port], without a path")
        self.trusted_proxy_networks  # noqa: B018 - raises on a malformed CIDR

    def _validate_login(self) -> None:
        if self.demo_login.strip().lower() not in _SWITCH_WORDS:
            raise ValueError("demo_login must be true, false or empty")
        for origin in self.webauthn_origin_list:
            if not origin.startswith(("https://", "http://localhost")):
                raise ValueError(f"webauthn origin {origin!r}: https (or http://localhost) only")

    @property
    def expired_retention_ms(self) -> int:
        return parse_span_ms(self.expired_retention)

    @property
    def idp_intent_lifetime_ms(self) -> int:
        return parse_span_ms(self.idp_intent_lifetime)

    @property
    def callback_base_url(self) -> str:
        """Where identity providers send the browser back: the public URL, else localhost."""
        return self.public_url.rstrip("/") or f"http://localhost:{self.http_port}"

    @property
    def default_idle_timeout_ms(self) -> int:
        return parse_span_ms(self.default_idle_timeout)

    @property
    def activity_granularity_ms(self) -> int:
        return parse_span_ms(self.activity_granularity)

    @property
    def rates(self) -> tuple[Rate, Rate, Rate]:
        """The credential-check rates per user, per client IP, per caller."""
        return (
            parse_rate(self.rate_limit_user),
            parse_rate(self.rate_limit_ip),
            parse_rate(self.rate_limit_caller),
        )

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(
                ip_network(part.strip(), strict=False)
                for part in self.trusted_proxies.split(",")
                if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None

    @property
    def webauthn_origin_list(self) -> tuple[str, ...]:
        """The accepted WebAuthn origins; dev mode defaults to this server on localhost."""
        given = tuple(o.strip().rstrip("/") for o in self.webauthn_origins.split(",") if o.strip())
        if given or not self.dev_mode:
            return given
        return (f"http://localhost:{self.http_port}",)

    @property
    def demo_login_enabled(self) -> bool:
        value = self.demo_login.strip().lower()
        if value in ("", "auto"):
            return self.dev_mode
        return value in _ON_WORDS

    @property
    def embedded(self) -> bool:
        return not self.redis_url
