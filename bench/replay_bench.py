"""Replay benchmark: a generated two-hour session of N events (default 200,000), written through
the real session core and recorder; then the time to open its manifest, the median and p99 time
of `state at t` at random times, and log bytes per event.

`state?t=` serves the bounded state (`recorder/timeline.py`); the whole state at t, what it
served before, is timed on the same times in the same run (before/after as a ratio). The peer,
run in the same process on the same data: the same state computed by folding every event from
the start (what a replay without snapshots would do).

    python bench/replay_bench.py [--events N] [--queries Q] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classroom.core import CommandError, SessionCore, SessionState, apply
from recorder import codec
from recorder.logfile import iter_records
from recorder.recorder import Recorder
from recorder.replay import Recording

TWO_HOURS_MS = 2 * 3600 * 1000


async def generate(root: Path, n_events: int, learners: int = 200, seed: int = 1) -> str:
    """Drive a real core through a busy session and record it with the real recorder."""
    rng = random.Random(seed)
    sid = "bench-session"
    recorder = Recorder(root)
    recovered = await recorder.open(sid, "Benchmark session", "on")
    core = SessionCore(sid, "Benchmark session", state=recovered.state)
    record = lambda events: recorder.append(sid, events)  # noqa: E731
    record(core.join("trainer", "Trainer", "trainer", 0))
    record(core.execute("trainer", "session.start", {}, 0).events)
    people = [f"l{i}" for i in range(learners)]
    for i, pid in enumerate(people):
        record(core.join(pid, f"Learner {i}", "learner", i * 10))
    polls: list[str] = []
    questions: list[str] = []
    strokes = 0
    flushed = 0
    step = TWO_HOURS_MS / n_events
    while core.state.seq < n_events:
        t = int(core.state.seq * step)
        pid = rng.choice(people)
        roll = rng.random()
        try:
            # The mix of a lively class: mostly chat, votes and reactions; the trainer draws a
            # stroke every few seconds (begin, two extends, end) and turns the page when full.
            if roll < 0.35:
                out = core.execute(
                    pid, "chat.send", {"text": f"message {core.state.seq} " * rng.randint(1, 6)}, t
                )
            elif roll < 0.45:
                if len(core.state.board["pages"][core.state.board["current"]]) >= 400:
                    out = core.execute("trainer", "wb.page.add", {}, t)
                else:
                    pts = [rng.uniform(0, 800) if k % 2 == 0 else rng.uniform(0, 450) for k in range(16)]
                    out = core.execute("trainer", "wb.stroke.begin", {"points": pts, "color": "#224488"}, t)
                    eid = out.reply.get("id")
                    record(out.events)
                    for _ in range(2):
                        more = [rng.uniform(0, 450) for _ in range(16)]
                        record(
                            core.execute(
                                "trainer", "wb.stroke.extend", {"element_id": eid, "points": more}, t
                            ).events
                        )
                    out = core.execute("trainer", "wb.stroke.end", {"element_id": eid}, t)
                    strokes += 1
            elif roll < 0.70 and polls:
                out = core.execute(pid, "poll.vote", {"poll_id": polls[-1], "choices": [rng.randrange(4)]}, t)
            elif roll < 0.71:
                if polls:
                    record(core.execute("trainer", "poll.close", {"poll_id": polls[-1]}, t).events)
                out = core.execute(
                    "trainer", "poll.open", {"question": "Which?", "options": ["a", "b", "c", "d"]}, t
                )
                polls.append(out.reply["id"])
            elif roll < 0.78:
                out = core.execute(pid, "qa.ask", {"text": f"question {core.state.seq}?"}, t)
                questions.append(out.reply["id"])
            elif roll < 0.90 and questions:
                out = core.execute(pid, "qa.upvote", {"question_id": rng.choice(questions)}, t)
            else:
                out = core.execute(pid, "reaction.send", {"emoji": "👏"}, t)
            record(out.events)
        except CommandError:
            pass  # rate limits and the like, as in a real session
        if core.state.seq - flushed >= 200:  # yield as a server would between commands
            await recorder.durable(sid, core.state.seq)
            flushed = core.state.seq
    record(core.execute("trainer", "session.end", {}, TWO_HOURS_MS).events)
    await recorder.durable(sid, core.state.seq)
    await recorder.close()
    return sid


def full_fold(root: Path, sid: str, t: int) -> dict:
    """The peer: fold every event from the start up to t."""
    data = (root / sid / "events.log").read_bytes()
    state = None
    for _, _, payload in iter_records(data):
        rec = codec.unpackb(payload)
        if "h" in rec:
            state = SessionState(rec["h"]["id"], rec["h"]["title"])
            continue
        event = codec.event_from_record(rec)
        if event.t > t:
            break
        apply(state, event)
    return state.view("learner", None)


def report_times(root: Path, sid: str, runs: int = 5) -> tuple[list[float], list[float]]:
    """The engagement report (`GET /api/sessions/{id}/report` minus HTTP): from a recording
    opened afresh (the saved index with the report's fold, checked against the log; the events
    after it folded; the report rendered), and again on the same open recording (what a live
    session's next report costs with no new events: the render)."""
    cold, warm = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        rec = Recording(root, sid)
        duration = rec.manifest()["duration_ms"]
        report = rec.report_fold().report(duration)
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rec.report_fold().report(duration)
        warm.append(time.perf_counter() - t0)
    counts = rec.manifest()["counts"]
    # Correctness guard: the report's totals are the manifest's counts.
    assert report["totals"]["chat"] == counts["chat"], "report chat total mismatch"
    assert report["totals"]["questions"] == counts["questions"], "report questions mismatch"
    assert report["totals"]["reactions"] == counts["reactions"], "report reactions mismatch"
    assert report["totals"]["learners"] == counts["participants"], "report learners mismatch"
    return cold, warm


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def run(n_events: int, queries: int, peer_queries: int, full_queries: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        sid = asyncio.run(generate(root, n_events))
        gen_s = time.perf_counter() - t0
        log_bytes = (root / sid / "events.log").stat().st_size
        snap_bytes = (root / sid / "snapshots.log").stat().st_size

        opens = []  # as a server opens it: the index the recorder saved, checked against the log
        for _ in range(5):
            t0 = time.perf_counter()
            manifest = Recording(root, sid).manifest()
            opens.append(time.perf_counter() - t0)
        saved_index = root / sid / "index.cache"
        saved_index.rename(saved_index.with_suffix(".aside"))
        scans = []  # without it: one full scan of the log
        for _ in range(3):
            t0 = time.perf_counter()
            Recording(root, sid).manifest()
            scans.append(time.perf_counter() - t0)
        saved_index.with_suffix(".aside").rename(saved_index)
        rec = Recording(root, sid)
        rec.manifest()
        rng = random.Random(2)
        times = [rng.randrange(0, manifest["duration_ms"]) for _ in range(queries)]
        # The bounded state's timeline is built by one forward fold when first asked for.
        t0 = time.perf_counter()
        rec.state_at(0, bounded=True)
        build_s = time.perf_counter() - t0
        lat = []
        for t in times:
            t0 = time.perf_counter()
            rec.state_at(t, bounded=True)
            lat.append(time.perf_counter() - t0)
        full = []  # the whole state at t: what `state?t=` served before it was bounded
        for t in times[:full_queries]:
            t0 = time.perf_counter()
            rec.state_at(t)
            full.append(time.perf_counter() - t0)
        # Where the time of a query goes: decoding the nearest snapshot, folding the events
        # after it, building the view (the same steps as Recording.state_at, timed apart).
        phases = {"snapshot": [], "fold": [], "view": []}
        for t in times[:50]:
            hi = bisect.bisect_right(rec.index.ts, t)
            t0 = time.perf_counter()
            state, start = rec._base_state(hi)
            t1 = time.perf_counter()
            for event, _ in rec._read_events(start, hi):
                apply(state, event)
            t2 = time.perf_counter()
            state.view("learner", None)
            t3 = time.perf_counter()
            phases["snapshot"].append(t1 - t0)
            phases["fold"].append(t2 - t1)
            phases["view"].append(t3 - t2)
        final_json = len(json.dumps(rec.state_at(manifest["duration_ms"])))
        bounded_json = len(json.dumps(rec.state_at(manifest["duration_ms"], bounded=True)))
        peer = []
        for t in times[:peer_queries]:
            t0 = time.perf_counter()
            full_fold(root, sid, t)
            peer.append(time.perf_counter() - t0)
        # Correctness guard: both ways agree.
        check = times[0]
        ours, theirs = rec.state_at(check), full_fold(root, sid, check)
        ours.pop("t"), ours.pop("paused"), theirs.pop("t")
        assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True), "replay state mismatch"
        for t in times[:20]:  # the bounded state is the bounded view of the whole state
            want = rec.full_state(t).view("learner", None, bounded=True)
            want["t"], want["paused"] = t, rec.paused_at(t)
            assert rec.state_at(t, bounded=True) == want, "bounded replay state mismatch"
        report_cold, report_warm = report_times(root, sid)
        n = manifest["counts"]["events"]
        return {
            "report_cold_ms": statistics.median(report_cold) * 1000,
            "report_cold_max_ms": max(report_cold) * 1000,
            "report_warm_ms": statistics.median(report_warm) * 1000,
            "events": n,
            "duration_ms": manifest["duration_ms"],
            "generate_s": gen_s,
            "manifest_open_ms": statistics.median(opens) * 1000,
            "manifest_scan_ms": statistics.median(scans) * 1000,
            "state_p50_ms": statistics.median(lat) * 1000,
            "state_p99_ms": pct(lat, 99) * 1000,
            "full_p50_ms": statistics.median(full) * 1000,
            "full_p99_ms": pct(full, 99) * 1000,
            "timeline_build_ms": build_s * 1000,
            "bounded_state_json_bytes": bounded_json,
            "full_queries": full_queries,
            "peer_p50_ms": statistics.median(peer) * 1000,
            "peer_p99_ms": pct(peer, 99) * 1000,
            "log_bytes_per_event": log_bytes / n,
            "phase_ms": {k: statistics.median(v) * 1000 for k, v in phases.items()},
            "final_state_json_bytes": final_json,
            "snapshot_bytes": snap_bytes,
            "queries": queries,
            "peer_queries": peer_queries,
        }


def markdown(r: dict) -> str:
    ratio = r["peer_p50_ms"] / r["state_p50_ms"]
    return "\n".join(
        [
            "## Replay (`bench/replay_bench.py`)",
            "",
            f"A generated two-hour session of {r['events']:,} events (chat, streamed strokes, votes,",
            "questions, upvotes, reactions from 200 learners), written through the real core and recorder.",
            f"State queries at {r['queries']} random times; the peer (fold every event from the start, no",
            f"snapshots) at {r['peer_queries']} of the same times, same process, same files.",
            "",
            "| figure | Classcast | peer: full fold | ratio (peer / ours) |",
            "| --- | --- | --- | --- |",
            f"| open manifest (saved index, median of 5) | {r['manifest_open_ms']:.0f} ms | "
            f"{r['manifest_scan_ms']:.0f} ms (full scan) | "
            f"{r['manifest_scan_ms'] / r['manifest_open_ms']:.0f}x |",
            f"| `state?t=` median | {r['state_p50_ms']:.1f} ms | {r['peer_p50_ms']:.0f} ms | {ratio:.0f}x |",
            f"| `state?t=` p99 | {r['state_p99_ms']:.1f} ms | {r['peer_p99_ms']:.0f} ms | "
            f"{r['peer_p99_ms'] / r['state_p99_ms']:.0f}x |",
            f"| `state?t=` at the end, JSON | {r['bounded_state_json_bytes'] / 1e3:.0f} kB | "
            f"{r['final_state_json_bytes'] / 1e6:.1f} MB (whole state) | |",
            f"| log bytes per event | {r['log_bytes_per_event']:.0f} B | | |",
            f"| snapshots on disk | {r['snapshot_bytes'] / 1e6:.1f} MB | | |",
            "",
            "`state?t=` is bounded like a live join's snapshot (recent chat, the current page, open and "
            "recent polls, recent questions; `more` counts the rest, paged by `state/chat`, "
            "`state/board/{page}`, `state/polls`, `state/questions`). Before it was, it returned the "
            f"whole state at t, timed here at {r['full_queries']} of the same times: median "
            f"{r['full_p50_ms']:.0f} ms, p99 {r['full_p99_ms']:.0f} ms; bounded, median "
            f"{r['state_p50_ms']:.1f} ms, p99 {r['state_p99_ms']:.1f} ms: "
            f"{r['full_p50_ms'] / r['state_p50_ms']:.0f}x and {r['full_p99_ms'] / r['state_p99_ms']:.0f}x "
            "faster. It folds at most 250 events from an in-memory checkpoint that holds only what a "
            "bounded view can show (`recorder/timeline.py`), built by one forward fold when the "
            f"recording is first asked for a state ({r['timeline_build_ms']:.0f} ms here, once per open "
            "recording) and extended as a live recording grows.",
            "",
            "The engagement report of the same session (`GET /api/sessions/{id}/report` without HTTP; "
            "`recorder/report.py`) from a recording opened afresh, as after a restart: its fold is "
            "saved with the index, so this is the index loaded and checked against the log, the events "
            f"after it folded, and the report rendered: median {r['report_cold_ms']:.0f} ms, slowest "
            f"{r['report_cold_max_ms']:.0f} ms of 5 (the bar: under 1 s). Again on the open recording "
            f"with no new events (a live session's next report), {r['report_warm_ms']:.0f} ms.",
            "",
            "Where the whole state at t goes (medians of 50 queries): "
            f"decoding the nearest snapshot {r['phase_ms']['snapshot']:.0f} ms, folding the events after "
            f"it {r['phase_ms']['fold']:.0f} ms, building the view {r['phase_ms']['view']:.0f} ms; at the "
            f"end it is {r['final_state_json_bytes'] / 1e6:.1f} MB as JSON, so its cost grows with what was "
            "said (exports still use it). Opening the manifest does not, since the recorder saves the "
            "index as it writes. Snapshots are bounded to about 8x the log's size.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--peer-queries", type=int, default=10)
    parser.add_argument("--full-queries", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    result = run(args.events, args.queries, args.peer_queries, args.full_queries)
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
