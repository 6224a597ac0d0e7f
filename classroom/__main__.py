"""Command line: `python -m classroom serve` and `python -m classroom create "Title"`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from .api import links
from .auth import Signer, new_id
from .config import Settings, add_arguments, from_args
from .http import RedactingAccessLogger
from .store import SessionStore

DEMO_TITLE = "Demo session"


def _signer(settings: Settings) -> Signer:
    assert settings.secret
    return Signer(settings.secret, settings.link_ttl, settings.participant_ttl)


EXIT_UNSAVED = 3  # `serve` stopped with events it could not save (the log says which)


def serve(settings: Settings) -> None:
    from .app import STOPPED, build_app

    created = settings.resolve_keys()
    store = SessionStore(settings.data_dir)
    try:
        demo = next((s for s in store.list_sync() if s.title == DEMO_TITLE and s.status != "ended"), None)
        demo = demo or store.create_sync(new_id(), DEMO_TITLE)
    finally:
        store.close()
    app = build_app(settings)
    base = settings.base_url
    urls = links(_signer(settings), base, demo.id)

    def announce(_aiohttp_message: str) -> None:
        # Called by run_app once the socket listens, so the printed links work at once.
        print(f"Classcast is running at {base}", flush=True)
        print(f"Trainer link for '{demo.title}': {urls['trainer_url']}", flush=True)
        print(f"Learner link: {urls['join_url']}", flush=True)
        if created:
            print(f"Admin key (saved in {settings.data_dir / 'admin.key'}): {settings.admin_key}", flush=True)

    # A deep accept queue: a class joining at once must not find the door shut.
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=announce,
        handle_signals=True,
        backlog=2048,
        access_log_class=RedactingAccessLogger,  # tokens and keys in query strings stay out of the log
        shutdown_timeout=5,  # sockets are closed at once (app.py); this only bounds a stuck request
    )
    if app[STOPPED]["saved"] is False:
        sys.exit(EXIT_UNSAVED)


def create(settings: Settings, title: str) -> None:
    from .api import CreateSession
    from .core import CommandError
    from .core.validation import parse

    try:
        title = parse(CreateSession, {"title": title}).title  # the same rules as the HTTP API
    except CommandError as exc:
        sys.exit(f"error: {exc.message}")
    settings.resolve_keys()
    store = SessionStore(settings.data_dir)
    try:
        info = store.create_sync(new_id(), title)
    finally:
        store.close()
    urls = links(_signer(settings), settings.base_url, info.id)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m classroom", description="Classcast server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_arguments(sub.add_parser("serve", help="run the server"))
    create_parser = sub.add_parser("create", help="create a session and print its links")
    add_arguments(create_parser)
    create_parser.add_argument("title")
    export_parser = sub.add_parser("export", help="export a recording to files")
    add_arguments(export_parser)
    export_parser.add_argument("id", help="the session id")
    export_parser.add_argument("--format", choices=["json", "msgpack", "vtt", "txt", "csv"], default="json")
    export_parser.add_argument("--out", type=Path, default=Path("."), help="directory for the files")
    args = parser.parse_args(argv)
    settings = from_args(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
        create(settings, args.title)


if __name__ == "__main__":
    main()
