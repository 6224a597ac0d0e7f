"""Server settings: flags override environment variables, which override defaults."""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default=env("HOST", Settings.host))
    parser.add_argument("--port", type=int, default=int(env("PORT", DEFAULT_PORT)))
    parser.add_argument("--data-dir", type=Path, default=Path(env("DATA_DIR", "data")))
    parser.add_argument("--admin-key", default=env("CLASSCAST_ADMIN_KEY"))
    parser.add_argument("--secret", default=env("CLASSCAST_SECRET"))
    parser.add_argument("--public-url", default=env("CLASSCAST_PUBLIC_URL"))
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=float(env("CLASSCAST_IDLE_TIMEOUT", Settings.idle_timeout)),
        help="seconds a live session may stay empty before it ends itself",
    )
    parser.add_argument(
        "--link-ttl",
        type=int,
        default=int(env("CLASSCAST_LINK_TTL", Settings.link_ttl)),
        help="seconds a trainer, learner or replay link stays valid",
    )
    parser.add_argument(
        "--participant-ttl",
        type=int,
        default=int(env("CLASSCAST_PARTICIPANT_TTL", Settings.participant_ttl)),
        help="seconds a participant's resume token stays valid (renewed at every join)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[o for o in env("CLASSCAST_CORS_ORIGINS", "").split(",") if o],
        help="extra browser origin allowed to connect (repeatable)",
    )
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--bad-packets",
        type=int,
        default=int(env("CLASSCAST_BAD_PACKETS", Settings.bad_packets)),
        help="packets that do not decode a connection may send per 10 s before it is closed (0: no limit)",
    )


def from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        admin_key=args.admin_key,
        secret=args.secret,
        public_url=args.public_url,
        idle_timeout=args.idle_timeout,
        link_ttl=args.link_ttl,
        participant_ttl=args.participant_ttl,
        cors_origins=list(args.cors_origin),
        log_level=args.log_level,
        bad_packets=args.bad_packets,
    )
