"""Server settings: flags override environment variables, which override defaults."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8080


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path("data")
    admin_key: str | None = None  # None: read or create data_dir/admin.key
    secret: str | None = None  # None: read or create data_dir/secret.key
    public_url: str | None = None  # base of the links; None: http://host:port
    idle_timeout: float = 1800.0  # seconds a live session may stay empty before it ends itself
    link_ttl: int = 30 * 24 * 3600
    participant_ttl: int = 7 * 24 * 3600
    cors_origins: list[str] = field(default_factory=list)
    log_level: str = "INFO"
    bad_packets: int = 20  # undecodable packets per connection per 10 s before it is closed; 0: never
    joins_per_link: int = 10_000  # new learners per session link per minute, whole cluster; 0: no cap
    # STUN/TURN servers for the server's WebRTC peers; none is needed on loopback or a LAN.
    ice_servers: list[str] = field(default_factory=list)
    # Cluster mode (classroom/cluster/): sessions shared with the other nodes on this Redis.
    redis_url: str | None = None
    # A Learning Record Store's xAPI endpoint: statements are pushed there (`recorder/lrs.py`).
    lrs_url: str | None = None
    lrs_user: str | None = None
    lrs_password: str | None = None
    # -- operating (issue 11): large sessions, processes, draining ---------------------------
    crowd_size: int = 200  # learners online above which a session's presence is summarised; 0: never
    workers: int = 1  # server processes sharing the port (SO_REUSEPORT); > 1 needs redis_url
    drain_notice: float = 0.0  # seconds /readyz says 503 before clients are told to move
    drain_grace: float = 10.0  # seconds the drain hooks and clients' leaving may take after that

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def resolve_keys(self) -> bool:
        """Fill in the admin key and signing secret from the data directory, creating them at
        first start. Returns True when a new admin key was generated (so it can be printed)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secret = self.secret or _read_or_create(self.data_dir / "secret.key")[0]
        if self.admin_key:
            return False
        self.admin_key, created = _read_or_create(self.data_dir / "admin.key")
        return created


def _read_or_create(path: Path) -> tuple[str, bool]:
    if path.exists():
        return path.read_text().strip(), False
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


class ConfigError(ValueError):
    """A flag or environment variable with a value the server cannot use (one line, exit 2)."""


# name -> (flag, environment variable, parse, help). Flags override the environment, which
# overrides the defaults in Settings.
_OPTIONS: dict[str, tuple[str, str, Any, str]] = {
    "host": ("--host", "HOST", str, "address to listen on"),
    "port": ("--port", "PORT", int, "port to listen on"),
    "data_dir": ("--data-dir", "DATA_DIR", Path, "directory of sessions, recordings and keys"),
    "admin_key": ("--admin-key", "CLASSCAST_ADMIN_KEY", str, "admin key (default: data/admin.key)"),
    "secret": ("--secret", "CLASSCAST_SECRET", str, "link signing secret (default: data/secret.key)"),
    "public_url": (
        "--public-url",
        "CLASSCAST_PUBLIC_URL",
        str,
        "base of the links (default: http://HOST:PORT)",
    ),
    "idle_timeout": (
        "--idle-timeout",
        "CLASSCAST_IDLE_TIMEOUT",
        float,
        "seconds a live session may stay empty before it ends itself",
    ),
    "link_ttl": (
        "--link-ttl",
        "CLASSCAST_LINK_TTL",
        int,
        "seconds a trainer, learner or replay link stays valid",
    ),
    "participant_ttl": (
        "--participant-ttl",
        "CLASSCAST_PARTICIPANT_TTL",
        int,
        "seconds a participant's resume token stays valid (renewed at every join)",
    ),
    "cors_origins": (
        "--cors-origin",
        "CLASSCAST_CORS_ORIGINS",
        str,
        "extra browser origin allowed to connect, besides the server's own (repeatable; "
        "replaces CLASSCAST_CORS_ORIGINS)",
    ),
    "log_level": ("--log-level", "LOG_LEVEL", str, "DEBUG, INFO, WARNING or ERROR"),
    "bad_packets": (
        "--bad-packets",
        "CLASSCAST_BAD_PACKETS",
        int,
        "packets that do not decode a connection may send per 10 s before it is closed (0: no limit)",
    ),
    "joins_per_link": (
        "--joins-per-link",
        "CLASSCAST_JOINS_PER_LINK",
        int,
        "new learners a session's learner link admits per minute, across the cluster; a backstop "
        "against a leaked link (0: no limit; default 10000)",
    ),
    "ice_servers": (
        "--ice-servers",
        "CLASSCAST_ICE_SERVERS",
        str,
        "STUN/TURN servers for live media, comma-separated URLs "
        "(stun:host:port, turn:user:password@host:port?transport=udp; default: none)",
    ),
    "redis_url": (
        "--redis-url",
        "REDIS_URL",
        str,
        "cluster mode: share sessions with the other servers on this Redis (redis://host:port/db; "
        "default: none, one process on its own)",
    ),
    "lrs_url": (
        "--lrs-url",
        "CLASSCAST_LRS_URL",
        str,
        "xAPI endpoint of a Learning Record Store to push statements to, e.g. https://lrs.example.org/xAPI "
        "(default: none)",
    ),
    "lrs_user": ("--lrs-user", "CLASSCAST_LRS_USER", str, "user name for the LRS (HTTP basic auth)"),
    "lrs_password": (
        "--lrs-password",
        "CLASSCAST_LRS_PASSWORD",
        str,
        "password for the LRS (prefer the variable: a flag shows in the process list)",
    ),
    "crowd_size": (
        "--crowd-size",
        "CLASSCAST_CROWD_SIZE",
        int,
        "learners online above which learners get a presence summary once a second instead of "
        "every join and leave (0: never; default 200)",
    ),
    "workers": (
        "--workers",
        "CLASSCAST_WORKERS",
        int,
        "server processes sharing the port (SO_REUSEPORT); more than 1 needs --redis-url",
    ),
    "drain_notice": (
        "--drain-notice",
        "CLASSCAST_DRAIN_NOTICE",
        float,
        "seconds after SIGTERM during which /readyz says 503 before clients are told to reconnect "
        "elsewhere: time for a load balancer to take the node out (default 0)",
    ),
    "drain_grace": (
        "--drain-grace",
        "CLASSCAST_DRAIN_GRACE",
        float,
        "seconds the drain hooks and the clients' leaving may take before the server stops (default 10)",
    ),
}
SERVE_OPTIONS = tuple(_OPTIONS)
# `create` prints links: it needs what makes them (the URL, the secret, the lifetimes).
CREATE_OPTIONS = (
    *("host", "port", "data_dir", "secret", "public_url"),
    *("link_ttl", "participant_ttl", "log_level", "redis_url"),
)
EXPORT_OPTIONS = ("data_dir", "log_level")
_URL_OPTIONS = ("host", "port", "public_url")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = SERVE_OPTIONS) -> None:
    """Add the flags `names` to a subcommand's parser; their values are checked in from_args."""
    for name in names:
        flag, var, _parse, help_ = _OPTIONS[name]
        if name == "cors_origins":
            parser.add_argument(flag, dest=name, action="append", default=None, help=f"{help_} [{var}]")
        else:
            parser.add_argument(flag, dest=name, default=None, help=f"{help_} [{var}]")


def url_configured(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the server's URL was given by a flag or the environment (not left to defaults)."""
    env = os.environ if environ is None else environ
    return any(
        getattr(args, n, None) is not None or env.get(_OPTIONS[n][1]) not in (None, "") for n in _URL_OPTIONS
    )


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the parsed flags, then the environment, then the defaults. Raises
    ConfigError naming the flag or variable when a value cannot be used."""
    env = os.environ if environ is None else environ
    settings = Settings()
    for name, (flag, var, parse, _help) in _OPTIONS.items():
        given = getattr(args, name, None)
        source, raw = (flag, given) if given is not None else (var, env.get(var))
        if raw is None or raw == "":
            continue
        if name == "cors_origins":
            items = raw if isinstance(raw, list) else raw.split(",")
            settings.cors_origins = [o.strip().rstrip("/") for o in items if o.strip()]
            continue
        if name == "ice_servers":
            settings.ice_servers = ice_server_urls(raw, source)
            continue
        try:
            value = parse(raw)
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(parse, "valid")
            raise ConfigError(f"{source}={raw!r}: must be {kind}") from None
        setattr(settings, name, value)
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"port {settings.port}: must be between 0 and 65535")
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"log level {settings.log_level!r}: must be one of {', '.join(_LOG_LEVELS)}")
    settings.log_level = settings.log_level.upper()
    for name in ("idle_timeout", "link_ttl", "participant_ttl"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{_OPTIONS[name][0]}: must be positive")
    if settings.public_url is not None:
        settings.public_url = normalise_url(settings.public_url)
    if settings.redis_url is not None and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(f"redis URL {settings.redis_url!r}: must start with redis://, rediss:// or unix://")
    if settings.lrs_url is not None:
        settings.lrs_url = normalise_url(settings.lrs_url, "LRS URL")
    elif settings.lrs_user or settings.lrs_password:
        raise ConfigError("--lrs-user and --lrs-password need --lrs-url (or CLASSCAST_LRS_URL)")
    if settings.crowd_size < 0:
        raise ConfigError("--crowd-size: must be 0 (never) or more")
    if not 1 <= settings.workers <= 256:
        raise ConfigError("--workers: must be between 1 and 256")
    if settings.workers > 1 and not settings.redis_url:
        # Every worker would serve its own copy of a session: learners on different workers
        # would not see each other. Sessions are shared between processes through Redis only.
        raise ConfigError(
            "--workers above 1 needs --redis-url (REDIS_URL): workers share sessions through Redis"
        )
    for name in ("drain_notice", "drain_grace"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{_OPTIONS[name][0]}: must be 0 or more")
    return settings


ICE_SCHEMES = ("stun", "stuns", "turn", "turns")


def ice_server_urls(raw: str, source: str = "--ice-servers") -> list[str]:
    """Comma-separated STUN/TURN URLs, each checked for its scheme and a host."""
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    for url in urls:
        scheme, _, rest = url.partition(":")
        if scheme not in ICE_SCHEMES or not rest.rpartition("@")[2].split("?")[0]:
            raise ConfigError(
                f"{source}: {url!r} is not a STUN/TURN URL (stun:host:port, turn:user:password@host:port)"
            )
    return urls


def normalise_url(url: str, what: str = "public URL") -> str:
    """A base URL without trailing slashes, so `base + "/s/..."` never has `//`."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or url[-3:] == "://":
        raise ConfigError(f"{what} {url!r}: must start with http:// or https://")
    return url
