"""The engagement report's fold (`recorder/report.py`) on hand-written event streams: attendance,
participation, polls, the timeline, pauses, anonymous votes, and replay viewers' covered intervals."""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import msgpack

from recorder.report import MINUTE, ReportFold, merge, replay_viewers, report_csv


class Stream:
    """Builds events with gapless seqs and folds them, like a recording would."""

    def __init__(self) -> None:
        self.fold = ReportFold()
        self.seq = 0

    def __call__(
        self, t: int, type_: str, actor: str | None = None, visible: bool = True, **data: Any
    ) -> None:
        self.seq += 1
        self.fold.add(self.seq, t, type_, actor, data, visible)

    def join(self, t: int, pid: str, name: str, role: str = "learner") -> None:
        self(t, "participant.joined", pid, id=pid, name=name, role=role)

    def leave(self, t: int, pid: str) -> None:
        self(t, "participant.left", pid, id=pid)


def person(report: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in report["participants"] if p["id"] == pid)


def test_attendance_is_clipped_to_the_session_and_counts_learners_only():
    s = Stream()
    s.join(0, "T", "Tess", "trainer")
    s.join(0, "a", "Ada")  # waits before the start
    s(1000, "session.started", "T")
    s.join(2000, "b", "Bob")
    s.leave(5000, "b")
    s.join(7000, "b", "Bob")
    s.join(8000, "c", "Cat")
    s.leave(9000, "c")
    s(11000, "session.ended", "T", reason="trainer")
    r = s.fold.report(0)
    assert r["session"] == {"start_t": 1000, "end_t": 11000, "duration_ms": 10000, "final": True}
    assert person(r, "a")["joins"] == [{"joined": 0, "left": 11000}]
    assert person(r, "a")["present_ms"] == 10000 and person(r, "a")["present_share"] == 1.0
    assert person(r, "b")["joins"] == [{"joined": 2000, "left": 5000}, {"joined": 7000, "left": 11000}]
    assert person(r, "b")["present_ms"] == 3000 + 4000
    assert person(r, "c")["present_ms"] == 1000
    assert person(r, "T")["present_ms"] == 10000  # listed, but not in attendance
    assert r["totals"]["learners"] == 3
    assert r["totals"]["peak_attendance"] == 3  # a, b and c from 8000 to 9000
    assert r["totals"]["average_attendance"] == round((10000 + 7000 + 1000) / 10000, 2)


def test_a_live_report_runs_to_now_and_leaves_the_online_open():
    s = Stream()
    s(0, "session.started", "T")
    s.join(500, "a", "Ada")
    r = s.fold.report(2500)
    assert r["session"]["final"] is False and r["session"]["end_t"] == 2500
    assert person(r, "a")["joins"] == [{"joined": 500, "left": None}]
    assert person(r, "a")["present_ms"] == 2000
    assert s.fold.report(4500)["participants"][0]["present_ms"] == 4000  # the same fold, later


def test_participation_counts_polls_and_quiz_scores():
    s = Stream()
    s(0, "session.started", "T")
    for pid in "abc":
        s.join(0, pid, pid.upper())
    s(100, "chat.message", "a", id="m1", text="hi", name="A", role="learner")
    s(110, "chat.message", "a", id="m2", text="again", name="A", role="learner")
    s(120, "reaction", "b", id="b", emoji="👏")
    s(130, "hand.raised", "c", id="c")
    s(140, "hand.lowered", "T", id="c")
    s(150, "qa.asked", "a", id="q1", text="Why?", anonymous=False, name="A")
    s(151, "qa.asked", "b", id="q2", text="How?", anonymous=True, name="B")
    s(160, "qa.upvoted", "b", id="q1", votes=1)
    s(161, "qa.upvoted", "c", id="q1", votes=2)
    s(162, "qa.upvoted", "c", id="q2", votes=1)
    s(163, "qa.unvoted", "c", id="q2", votes=0)
    quiz = dict(options=["3", "4"], multiple=False, anonymous=False, quiz=True, correct=[1])
    s(200, "poll.opened", "T", id="p1", question="2+2?", **quiz)
    s(210, "poll.voted", "a", poll_id="p1", choices=[0], previous=None, anonymous=False, voters=1)
    s(211, "poll.voted", "a", poll_id="p1", choices=[1], previous=[0], anonymous=False, voters=1)  # changed
    s(212, "poll.voted", "b", poll_id="p1", choices=[0], previous=None, anonymous=False, voters=2)
    s(220, "poll.closed", "T", poll_id="p1")
    s(230, "poll.opened", "T", id="p2", question="Mood?", options=["x", "y"], anonymous=True, correct=None)
    s(231, "poll.voted", "c", poll_id="p2", choices=[0], previous=None, anonymous=True, voters=1)
    s(300, "session.ended", "T", reason="trainer")
    r = s.fold.report(0)
    a, b, c = (person(r, x) for x in "abc")
    assert (a["chat"], a["questions"], a["upvotes"], a["upvotes_received"]) == (2, 1, 0, 2)
    assert (b["reactions"], b["questions"], b["upvotes"], b["upvotes_received"]) == (1, 1, 1, 0)
    assert (c["hands"], c["upvotes"]) == (1, 1)  # upvoted twice, took one back
    assert (a["poll_votes"], a["quiz_correct"], a["quiz_answered"], a["quiz_score"]) == (1, 1, 1, 1.0)
    assert (b["poll_votes"], b["quiz_correct"], b["quiz_score"]) == (1, 0, 0.0)
    assert c["poll_votes"] == 0 and c["quiz_total"] == 1  # the anonymous vote is nobody's
    polls = {p["id"]: p for p in r["polls"]}
    assert polls["p1"]["voters"] == 2 and polls["p1"]["eligible"] == 3
    assert polls["p1"]["participation"] == round(2 / 3, 4)
    assert polls["p2"]["participation"] == round(1 / 3, 4)
    assert [q["id"] for q in r["top_questions"]] == ["q1"]  # q2 is back to no votes
    assert r["top_questions"][0]["name"] == "A"
    assert r["totals"]["chat"] == 2 and r["totals"]["votes"] == 4 and r["totals"]["upvotes"] == 3


def test_paused_content_counts_nowhere_but_presence_does():
    s = Stream()
    s(0, "session.started", "T")
    s.join(0, "a", "Ada")
    s(10, "chat.message", "a", visible=False, id="m1", text="off the record", name="Ada", role="learner")
    s(20, "reaction", "a", visible=False, id="a", emoji="👍")
    s.leave(30, "a")
    s(40, "session.ended", "T", reason="trainer")
    r = s.fold.report(0)
    assert person(r, "a")["chat"] == 0 and person(r, "a")["reactions"] == 0
    assert r["totals"]["chat"] == 0 and person(r, "a")["present_ms"] == 30


def test_timeline_per_minute():
    s = Stream()
    s(0, "session.started", "T")
    s.join(0, "a", "Ada")
    s.join(MINUTE + 5, "b", "Bob")
    s.leave(MINUTE + 10, "b")
    s(2 * MINUTE + 1, "chat.message", "a", id="m1", text="x", name="Ada", role="learner")
    s.leave(2 * MINUTE + 2, "a")
    s(3 * MINUTE + 500, "session.ended", "T", reason="trainer")
    r = s.fold.report(0)
    assert [(m["minute"], m["attendance"], m["chat"]) for m in r["timeline"]] == [
        (0, 1, 0),
        (1, 2, 0),
        (2, 1, 1),
        (3, 0, 0),
    ]


def test_names_are_replaced_by_aliases():
    s = Stream()
    s(0, "session.started", "T")
    s.join(0, "a", "Ada")
    s.join(0, "b", "Bob")
    s(5, "qa.asked", "a", id="q1", text="?", anonymous=False, name="Ada")
    s(6, "qa.upvoted", "b", id="q1", votes=1)
    r = s.fold.report(10, {"a": "Learner 1"})
    assert person(r, "a")["name"] == "Learner 1"
    assert r["top_questions"][0]["name"] == "Learner 1"


def test_merge_is_the_union_of_the_intervals():
    rng = random.Random(5)
    for _ in range(200):
        limit = rng.randrange(1, 500)
        intervals = [(a, a + rng.randrange(1, 80)) for a in (rng.randrange(0, 520) for _ in range(12))]
        covered = merge(intervals, limit)
        want = {ms for a, b in intervals for ms in range(a, min(b, limit))}
        got = {ms for a, b in covered for ms in range(a, b)}
        assert got == want
        assert all(covered[i][1] < covered[i + 1][0] for i in range(len(covered) - 1))  # disjoint, sorted


def test_replay_viewers_watched_share_quiz_and_questions():
    data = {
        "duration_ms": 1000,
        "viewers": [
            {"id": "v1", "name": "Vera", "created": 1.0},
            {"id": "v2", "name": "Walt", "created": 2.0},
        ],
        "progress": {"v1": [(0, 200), (100, 300), (600, 700)], "v2": [(0, 1000)]},
        "quiz": {"v2": {"p1": [1], "gone": [0]}},
        "questions": [{"viewer": "v1", "t": 250, "text": "Eh?"}],
    }
    r = replay_viewers(data, {"p1": [1], "p2": [0]})
    vera, walt = r["viewers"]
    assert vera["watched"] == [[0, 300], [600, 700]] and vera["watched_ms"] == 400
    assert vera["watched_share"] == 0.4 and vera["questions"] == [{"t": 250, "text": "Eh?"}]
    assert walt["watched_share"] == 1.0
    assert (walt["quiz_correct"], walt["quiz_answered"], walt["quiz_total"]) == (1, 1, 2)


def test_csv_neutralises_formulas():
    s = Stream()
    s(0, "session.started", "T")
    s.join(0, "a", "=HYPERLINK(1)")
    s(10, "session.ended", "T", reason="trainer")
    r = s.fold.report(
        0, replay={"duration_ms": 10, "viewers": [{"id": "v", "name": "+SUM(1)", "created": 0}]}
    )
    rows = list(csv.reader(io.StringIO(report_csv(r).decode())))
    assert rows[1][2] == "'=HYPERLINK(1)" and rows[2][2] == "'+SUM(1)"
    assert rows[1][7] == "10"  # numbers stay numbers


def test_a_saved_fold_goes_on_where_it_stopped():
    """The fold is saved with the index (msgpack) and extended after loading: the same report as
    one that never stopped, at every cut."""
    events: list[tuple[int, str, str | None, dict[str, Any]]] = [
        (0, "session.started", "T", {}),
        (0, "participant.joined", "a", {"id": "a", "name": "Ada", "role": "learner"}),
        (5, "poll.opened", "T", {"id": "p1", "question": "?", "options": ["x", "y"], "correct": [0]}),
        (6, "participant.joined", "b", {"id": "b", "name": "Bob", "role": "learner"}),
        (7, "poll.voted", "b", {"poll_id": "p1", "choices": [0], "previous": None, "voters": 1}),
        (8, "qa.asked", "a", {"id": "q1", "text": "Why?", "anonymous": False, "name": "Ada"}),
        (9, "qa.upvoted", "b", {"id": "q1", "votes": 1}),
        (MINUTE, "participant.left", "a", {"id": "a"}),
        (MINUTE + 1, "poll.closed", "T", {"poll_id": "p1"}),
        (MINUTE + 2, "chat.message", "b", {"id": "m1", "text": "bye", "name": "Bob", "role": "learner"}),
        (MINUTE + 3, "session.ended", None, {"reason": "trainer"}),
    ]
    whole = ReportFold()
    for seq, (t, type_, actor, data) in enumerate(events, 1):
        whole.add(seq, t, type_, actor, data, True)
    for cut in range(len(events) + 1):
        fold = ReportFold()
        for seq, (t, type_, actor, data) in enumerate(events[:cut], 1):
            fold.add(seq, t, type_, actor, data, True)
        fold = ReportFold.load(msgpack.unpackb(msgpack.packb(fold.dump()), strict_map_key=False))
        assert fold.pos == cut
        for seq, (t, type_, actor, data) in enumerate(events[cut:], cut + 1):
            fold.add(seq, t, type_, actor, data, True)
        assert fold.report(0) == whole.report(0), cut
