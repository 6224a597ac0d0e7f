"""Command line: `python -m classroom serve` and `python -m classroom create "Title"`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from .api import links
from .auth import Signer, new_id
from .config import (
    CREATE_OPTIONS,
    EXPORT_OPTIONS,
    SERVE_OPTIONS,
    ConfigError,
    Settings,
    add_arguments,
    from_args,
    url_configured,
)
from .http import RedactingAccessLogger
from .store import SessionInfo, SessionStore

DEMO_TITLE = "Demo session"


def _signer(settings: Settings) -> Signer:
    assert settings.secret
    return Signer(settings.secret, settings.link_ttl, settings.participant_ttl)


EXIT_UNSAVED = 3  # `serve` stopped with events it could not save (the log says which)
EXIT_USAGE = 2  # a flag, variable or address the server cannot use: one line on stderr
URL_FILE = "server.url"  # where `serve` notes its URL, for `create` run beside it


def fail(message: str) -> None:
    """One clear line, no traceback, exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def serve(settings: Settings) -> None:
    """Serve in this process, or with `--workers N` (N > 1) supervise N forked worker processes
    that share the port (`workers.py`)."""
    from .app import build_app  # noqa: F401 -- imported once here: forked workers inherit it
    from .workers import supervise

    created = settings.resolve_keys()
    if settings.redis_url:
        from .cluster import find_or_create_sync

        try:
            demo = find_or_create_sync(settings.redis_url, DEMO_TITLE)  # in the cluster's store
        except Exception as exc:  # unreachable, refused: one line, exit 2
            fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    else:
        store = SessionStore(settings.data_dir)
        try:
            demo = next((s for s in store.list_sync() if s.title == DEMO_TITLE and s.status != "ended"), None)
            demo = demo or store.create_sync(new_id(), DEMO_TITLE)
        finally:
            store.close()
    if settings.workers > 1:
        # The parent made the keys and the demo session once; the workers find them.
        if created:
            print(f"Admin key (saved in {settings.data_dir / 'admin.key'}): {settings.admin_key}", flush=True)
        print(f"Starting {settings.workers} workers on {settings.host}:{settings.port}", flush=True)
        sys.exit(supervise(lambda index: _serve_one(settings, demo, False, index), settings.workers))
    _serve_one(settings, demo, created, None)


def _serve_one(settings: Settings, demo: SessionInfo, created: bool, worker: int | None) -> None:
    """One server process: the only one, or worker `worker` of `--workers` (then it shares the
    port with SO_REUSEPORT, and only worker 0 prints the links)."""
    from .app import STOPPED, build_app

    app = build_app(settings)
    base = settings.base_url
    urls = links(_signer(settings), base, demo.id)

    def announce() -> None:
        # Called once the socket listens, so the printed links work at once.
        if worker not in (None, 0):
            return
        with contextlib.suppress(OSError):  # only a convenience for `create`
            (settings.data_dir / URL_FILE).write_text(base + "\n")
        print(f"Classcast is running at {base}", flush=True)
        print(f"Trainer link for '{demo.title}': {urls['trainer_url']}", flush=True)
        print(f"Learner link: {urls['join_url']}", flush=True)
        if created:
            print(f"Admin key (saved in {settings.data_dir / 'admin.key'}): {settings.admin_key}", flush=True)

    try:
        asyncio.run(_run(app, settings, announce, reuse_port=worker is not None))
    except OSError as exc:
        if exc.errno not in _LISTEN_ERRORS:
            raise
        fail(f"cannot listen on {settings.host}:{settings.port}: {_listen_reason(exc)}")
    if app[STOPPED]["saved"] is False:
        sys.exit(EXIT_UNSAVED)


async def _run(app: web.Application, settings: Settings, announce: Any, reuse_port: bool) -> None:
    """Listen, and on SIGTERM or SIGINT drain (`operate.NodeState.drain`) then stop; a second
    signal stops at once."""
    from .operate import NODE

    runner = web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,  # tokens and keys in query strings stay out of the log
        shutdown_timeout=5,  # sockets are closed at once (app.py); this only bounds a stuck request
    )
    await runner.setup()
    try:
        # A deep accept queue: a class joining at once must not find the door shut.
        site = web.TCPSite(runner, settings.host, settings.port, backlog=2048, reuse_port=reuse_port or None)
        await site.start()
        announce()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        draining: list[asyncio.Task[None]] = []

        async def drain() -> None:
            try:
                await app[NODE].drain(settings.drain_notice, settings.drain_grace)
            finally:
                stop.set()

        def on_signal() -> None:
            if draining:
                stop.set()  # asked again: stop now
            else:
                draining.append(loop.create_task(drain()))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await stop.wait()
        for task in draining:
            task.cancel()
    finally:
        await runner.cleanup()


_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL, errno.EPERM)


def _listen_reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another server running? choose one with --port or PORT)"
    return exc.strerror or str(exc)


def create(settings: Settings, title: str, recorded_url: bool = False) -> None:
    """Create a session in the data directory and print its links. Their base is the URL given
    by flags or environment, else the one the server running on this data directory noted."""
    from .api import CreateSession
    from .core import CommandError
    from .core.validation import parse

    try:
        title = parse(CreateSession, {"title": title}).title  # the same rules as the HTTP API
    except CommandError as exc:
        sys.exit(f"error: {exc.message}")
    settings.resolve_keys()
    if settings.redis_url:
        from .cluster import create_sync

        try:
            info = create_sync(settings.redis_url, title)  # in the cluster's store
        except Exception as exc:
            fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    else:
        store = SessionStore(settings.data_dir)
        try:
            info = store.create_sync(new_id(), title)
        finally:
            store.close()
    base = settings.base_url
    if recorded_url:
        with contextlib.suppress(OSError):
            base = (settings.data_dir / URL_FILE).read_text().strip() or base
    urls = links(_signer(settings), base, info.id)
    print(f"Session {info.id}: {info.title}")
    print(f"trainer: {urls['trainer_url']}")
    print(f"learner: {urls['join_url']}")
    print(f"replay:  {urls['replay_url']}")


def export(settings: Settings, session_id: str, fmt: str, out: Path) -> None:
    from recorder.cli import export as run_export
    from recorder.replay import RecordingError

    try:
        paths = run_export(settings.data_dir, session_id, fmt, out, progress=True)
    except RecordingError as exc:
        sys.exit(f"error: {exc}")
    for path in paths:
        print(path)


def _export_argv(argv: list[str]) -> list[str]:
    """`export` takes any session id, even one starting with `-` (older ids may): the first
    argument that is not one of its options is the id, passed after `--` so argparse reads it as
    a positional."""
    takes_value = {"--format", "--out", "--data-dir", "--log-level"}
    head, rest = argv[:1], argv[1:]
    options: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            positional.extend(rest[i + 1 :])
            break
        if arg in takes_value and i + 1 < len(rest):
            options += [arg, rest[i + 1]]
            i += 2
            continue
        if arg in ("-h", "--help") or arg.split("=", 1)[0] in takes_value or positional:
            options.append(arg)  # after the id, anything else is for argparse to judge
        else:
            positional.append(arg)
        i += 1
    return head + options + (["--", *positional] if positional else [])


def build_parser() -> argparse.ArgumentParser:
    """The command line; each subcommand has only the flags it uses."""
    parser = argparse.ArgumentParser(prog="python -m classroom", description="Classcast server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_arguments(sub.add_parser("serve", help="run the server"), SERVE_OPTIONS)
    create_parser = sub.add_parser("create", help="create a session and print its links")
    add_arguments(create_parser, CREATE_OPTIONS)
    create_parser.add_argument("title")
    export_parser = sub.add_parser("export", help="export a recording to files")
    add_arguments(export_parser, EXPORT_OPTIONS)
    export_parser.add_argument("id", help="the session id (any id, also one starting with '-')")
    export_parser.add_argument("--format", choices=["json", "msgpack", "vtt", "txt", "csv"], default="json")
    export_parser.add_argument("--out", type=Path, default=Path("."), help="directory for the files")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["export"]:
        argv = _export_argv(argv)
    args = parser.parse_args(argv)
    try:
        settings = from_args(args)
    except ConfigError as exc:
        fail(str(exc))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        serve(settings)
    elif args.command == "export":
        export(settings, args.id, args.format, args.out)
    else:
        create(settings, args.title, recorded_url=not url_configured(args))


if __name__ == "__main__":
    main()
