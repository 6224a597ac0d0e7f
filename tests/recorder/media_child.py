"""A process that records media in real time until it is killed (tests/recorder/test_media_crash.py):
`python -m tests.recorder.media_child <session_dir> <timeline.pickle>`. It says `sent <ms>` after
handing each packet over, `ms` from the start of the media."""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

from recorder.media import MediaRecorder, Packet


def main() -> None:
    session_dir, timeline = Path(sys.argv[1]), Path(sys.argv[2])
    items = pickle.loads(timeline.read_bytes())
    rec = MediaRecorder(session_dir)
    writers = {
        "video": rec.track("pubA", "cam", "video", "vp8", 1_000),
        "audio": rec.track("pubA", "mic", "audio", "opus", 1_000),
    }
    t0 = time.monotonic()
    for ms, fields in items:
        packet = Packet(*fields)
        delay = t0 + ms / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        writers[packet.track_kind].write(packet)
        print(f"sent {ms:.0f}", flush=True)
    print("done", flush=True)
    time.sleep(600)  # waits to be killed, the recording still open


if __name__ == "__main__":
    main()
