"""`python -m classroom export ID --format json|msgpack|vtt|txt|csv`: exports from the data directory,
with a progress bar for long recordings."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from . import exports
from .paths import valid_id
from .replay import Recording, RecordingError

FORMATS = {
    "json": ["recording.json"],
    "msgpack": ["recording.msgpack"],
    "vtt": ["chat.vtt"],
    "txt": ["chat.txt"],
    "csv": ["polls.csv", "questions.csv"],
}


def export(data_dir: Path, session_id: str, fmt: str, out_dir: Path, progress: bool = True) -> list[Path]:
    """Write the export files of one recording into `out_dir`; return their paths."""
    root = data_dir / "recordings"
    if not valid_id(session_id) or not (root / session_id / "events.log").exists():
        raise RecordingError(str(session_id)[:64], "no recording")
    rec = Recording(root, session_id)
    manifest = rec.manifest()
    if "damage" in manifest:
        print(
            f"warning: recording {session_id} is damaged ({manifest['damage']['error']}); "
            f"exporting the {manifest['damage']['recovered_events']} events before it",
            file=sys.stderr,
        )
    total = manifest["counts"]["events"]
    events: list[dict] = []
    with tqdm(
        total=total, unit="ev", desc=f"reading {session_id}", disable=not progress, file=sys.stderr
    ) as bar:
        for chunk in rec.iter_windows("trainer"):
            events.extend(chunk)
            bar.update(min(5000, bar.total - bar.n))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FORMATS[fmt]:
        if name.startswith("recording."):
            body = exports.whole(manifest, events, name.split(".")[1])
        elif name == "chat.vtt":
            body = exports.chat_vtt(events)
        elif name == "chat.txt":
            body = exports.chat_txt(events)
        else:
            final = rec.state_at(manifest["duration_ms"], "trainer")
            body = exports.polls_csv(final) if name == "polls.csv" else exports.questions_csv(final)
        path = out_dir / f"{session_id}-{name}"
        path.write_bytes(body)
        written.append(path)
    return written
