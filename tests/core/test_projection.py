"""The fold property: a client that folds its projected events onto a snapshot sees what the server
would show it, and replaying the full log rebuilds the server's state (history included)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import pytest

from classroom.core import AUDIENCES, Event, SessionCore, SessionState, apply, project
from classroom.core.registry import FOLDS, PROJECTIONS

from .conftest import SESSION_ID, TITLE, TRAINER_ID, Harness, fold_projected, replay

T2, A, B, C = "t2", "ada", "bob", "cy"


class Recorder(Harness):
    """A harness that takes every viewer's snapshot after each step."""

    VIEWERS: ClassVar[list[tuple[str, str | None]]] = [
        ("trainer", TRAINER_ID),
        ("trainer", T2),
        ("learner", A),
        ("learner", B),
        ("learner", C),
        ("learner", None),
        ("trainer", None),
    ]

    def __init__(self) -> None:
        super().__init__(SessionCore(SESSION_ID, TITLE))
        self.snapshots: list[tuple[int, dict[tuple[str, str | None], dict[str, Any]]]] = []
        self.snap()

    def snap(self) -> None:
        views = {(aud, v): copy.deepcopy(self.state.view(aud, v)) for aud, v in self.VIEWERS}  # type: ignore[arg-type]
        self.snapshots.append((self.state.seq, views))

    def join(self, *args: Any, **kw: Any) -> list[Event]:
        out = super().join(*args, **kw)
        self.snap()
        return out

    def leave(self, *args: Any, **kw: Any) -> list[Event]:
        out = super().leave(*args, **kw)
        self.snap()
        return out

    def run(self, *args: Any, **kw: Any) -> Any:
        out = super().run(*args, **kw)
        self.snap()
        return out


def scripted_session() -> Recorder:
    """A session that uses every feature, by two trainers and three learners."""
    r = Recorder()
    r.join(TRAINER_ID, "Tess", "trainer")
    r.join(A, "Ada", "learner")
    r.join(B, "Bob", "learner")
    r.run(TRAINER_ID, "session.start", {})
    r.run(TRAINER_ID, "session.mark", {"title": "Welcome"})
    r.run(TRAINER_ID, "recording.pause", {})
    # Presence.
    r.run(A, "hand.raise", {})
    r.run(B, "hand.raise", {})
    r.run(TRAINER_ID, "hand.lower", {"participant_id": A})
    r.run(B, "reaction.send", {"emoji": "👏"})
    r.join(C, "Cy", "learner")
    r.join(T2, "Tom", "trainer")
    # Chat.
    m1 = r.run(A, "chat.send", {"text": "Hello"}).reply["id"]
    m2 = r.run(B, "chat.send", {"text": "spam"}).reply["id"]
    r.run(TRAINER_ID, "chat.delete", {"message_id": m2})
    r.run(TRAINER_ID, "participant.mute", {"participant_id": B})
    r.run(T2, "chat.send", {"text": "co-trainer here"})
    # Polls: a named one, an anonymous one, a multiple-choice quiz.
    p1 = r.run(TRAINER_ID, "poll.open", {"question": "Tea or coffee?", "options": ["tea", "coffee"]}).reply[
        "id"
    ]
    p2 = r.run(
        T2, "poll.open", {"question": "Mood?", "options": ["ok", "meh", "bad"], "anonymous": True}
    ).reply["id"]
    p3 = r.run(
        TRAINER_ID,
        "poll.open",
        {"question": "Primes?", "options": ["2", "4", "5", "9"], "multiple": True, "correct": [0, 2]},
    ).reply["id"]
    r.run(A, "poll.vote", {"poll_id": p1, "choices": [0]})
    r.run(B, "poll.vote", {"poll_id": p1, "choices": [1]})
    r.run(A, "poll.vote", {"poll_id": p1, "choices": [1]})  # a change of mind
    r.run(A, "poll.vote", {"poll_id": p2, "choices": [2]})
    r.run(C, "poll.vote", {"poll_id": p2, "choices": [0]})
    r.run(A, "poll.vote", {"poll_id": p2, "choices": [1]})
    r.run(B, "poll.vote", {"poll_id": p3, "choices": [0, 1]})
    r.run(C, "poll.vote", {"poll_id": p3, "choices": [2, 0]})
    r.run(TRAINER_ID, "poll.close", {"poll_id": p1})
    r.run(TRAINER_ID, "poll.share", {"poll_id": p1})
    r.run(T2, "poll.close", {"poll_id": p3})
    r.leave(C)
    r.run(TRAINER_ID, "poll.share", {"poll_id": p3})
    r.join(C, "Cy", "learner")
    r.run(T2, "poll.close", {"poll_id": p2})  # closed, never shared
    # Q&A.
    q1 = r.run(A, "qa.ask", {"text": "Named question"}).reply["id"]
    q2 = r.run(B, "qa.ask", {"text": "Anonymous question", "anonymous": True}).reply["id"]
    q3 = r.run(C, "qa.ask", {"text": "Another one", "anonymous": True}).reply["id"]
    r.run(C, "qa.upvote", {"question_id": q1})
    r.run(A, "qa.upvote", {"question_id": q2})
    r.run(C, "qa.upvote", {"question_id": q2})
    r.run(TRAINER_ID, "qa.upvote", {"question_id": q3})
    r.run(C, "qa.unvote", {"question_id": q2})
    r.run(TRAINER_ID, "qa.answer", {"question_id": q1, "text": "Yes"})
    r.run(T2, "qa.dismiss", {"question_id": q3})
    r.run(TRAINER_ID, "qa.reopen", {"question_id": q3})
    r.run(TRAINER_ID, "qa.dismiss", {"question_id": q3})
    # Media: the floor, and the tracks the server reports (still live when the session ends).
    r.run(TRAINER_ID, "floor.give", {"id": A, "camera": True})
    r.run(TRAINER_ID, "floor.give", {"id": B})
    tracks = [
        {
            "id": f"{TRAINER_ID}:mic",
            "publisher": TRAINER_ID,
            "label": "mic",
            "kind": "audio",
            "codec": "opus",
        },
        {"id": f"{A}:camera", "publisher": A, "label": "camera", "kind": "video", "codec": "vp8"},
    ]
    r.events.extend(r.core.media_tracks(tracks, r._tick(None)))
    r.snap()
    r.run(TRAINER_ID, "floor.take", {"id": A})
    r.events.extend(r.core.media_tracks(tracks[:1], r._tick(None)))
    r.snap()
    r.run(B, "floor.take", {"id": B})
    # Whiteboard.
    s1 = r.run(TRAINER_ID, "wb.stroke.begin", {"points": [10, 10, 20, 20]}).reply["id"]
    r.run(TRAINER_ID, "wb.stroke.extend", {"element_id": s1, "points": [30, 30]})
    r.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True})
    s2 = r.run(A, "wb.stroke.begin", {"points": [1, 2], "color": "#123456"}).reply["id"]
    r.run(A, "wb.stroke.extend", {"element_id": s2, "points": [3, 4, 5, 6]})
    r.run(TRAINER_ID, "wb.stroke.end", {"element_id": s1})
    r.run(A, "wb.stroke.end", {"element_id": s2})
    sh = r.run(B, "wb.shape", {"kind": "rect", "x1": 1, "y1": 1, "x2": 50, "y2": 50}).reply["id"]
    r.run(T2, "wb.text", {"x": 100, "y": 100, "text": "Title"})
    r.run(TRAINER_ID, "wb.erase", {"element_id": sh})
    r.run(A, "wb.undo", {})  # removes s2
    r.run(A, "wb.redo", {})  # brings it back with all its points
    r.run(TRAINER_ID, "wb.undo", {})  # restores B's shape in its z place
    page = r.run(TRAINER_ID, "wb.page.add", {}).reply["id"]
    r.run(C, "wb.shape", {"kind": "arrow", "x1": 5, "y1": 5, "x2": 6, "y2": 6})
    r.run(TRAINER_ID, "wb.page.switch", {"page_id": "w1"})
    r.run(TRAINER_ID, "wb.clear", {})
    r.run(B, "wb.text", {"x": 1, "y": 1, "text": "after clear", "page_id": page})
    r.run(TRAINER_ID, "wb.undo", {})  # un-clears w1
    r.run(TRAINER_ID, "wb.permit", {"learners_can_draw": False})
    r.leave(B)
    r.run(TRAINER_ID, "participant.unmute", {"participant_id": B})
    r.run(TRAINER_ID, "recording.resume", {})
    r.run(TRAINER_ID, "session.mark", {"title": "Wrap-up"})
    r.run(A, "chat.send", {"text": f"bye (re {m1})"})
    # The last event must be one every audience sees, so every client's seq catches up.
    r.run(TRAINER_ID, "session.end", {})
    r.join(B, "Bob", "learner")
    return r


@pytest.fixture(scope="module")
def session() -> Recorder:
    return scripted_session()


def test_the_script_covers_every_event_type(session: Recorder):
    seen = {e.type for e in session.events}
    assert set(FOLDS) | {"reaction"} <= seen
    assert set(PROJECTIONS) <= seen
    last = session.events[-1]
    for audience in AUDIENCES:
        assert project(last, audience) is not None


def test_live_counts_and_visibility_at_the_end(session: Recorder):
    # A spot check that the scripted session is what the fold tests think it is.
    state = session.state
    polls = {p["question"]: p for p in state.view("trainer", TRAINER_ID)["polls"]}
    assert polls["Tea or coffee?"]["counts"] == [0, 2]
    assert polls["Mood?"]["counts"] == [1, 1, 0]
    assert polls["Mood?"]["votes"] is None
    assert polls["Primes?"]["counts"] == [2, 1, 1, 0]
    lpolls = {p["question"]: p for p in state.view("learner", C)["polls"]}
    assert lpolls["Mood?"]["counts"] is None
    assert lpolls["Mood?"]["my_choices"] == [0]
    assert lpolls["Primes?"]["correct"] == [0, 2]
    assert lpolls["Primes?"]["my_choices"] == [0, 2]
    qs = {q["text"]: q for q in state.view("learner", A)["questions"]}
    assert qs["Anonymous question"]["author"] is None
    assert qs["Anonymous question"]["votes"] == 1
    assert qs["Anonymous question"]["upvoted"] is True
    pages = state.view("learner", A)["board"]["pages"]
    assert [len(p["elements"]) for p in pages] == [4, 2]
    assert state.status == "ended"


VIEWER_IDS = [f"{aud}:{v}" for aud, v in Recorder.VIEWERS]


@pytest.mark.parametrize("viewer", range(len(Recorder.VIEWERS)), ids=VIEWER_IDS)
def test_snapshot_plus_projected_events_equals_the_servers_view(session: Recorder, viewer: int):
    audience, who = session.VIEWERS[viewer]
    expected = session.state.view(audience, who)  # type: ignore[arg-type]
    checked = 0
    for seq, views in session.snapshots:
        later = [e for e in session.events if e.seq > seq]
        client = fold_projected(views[(audience, who)], who, audience, later)
        assert client.view(audience, who) == expected, f"{audience}:{who} from seq {seq}"  # type: ignore[arg-type]
        checked += 1
    assert checked == len(session.snapshots) > 60


@pytest.mark.parametrize("viewer", range(len(Recorder.VIEWERS)), ids=VIEWER_IDS)
def test_every_intermediate_client_state_matches_the_server(session: Recorder, viewer: int):
    """Folding from the very start, the client agrees with the server after every step."""
    audience, who = session.VIEWERS[viewer]
    client = SessionState.from_view(copy.deepcopy(session.snapshots[0][1][(audience, who)]), who)
    events = iter(session.events)
    for seq, views in session.snapshots[1:]:
        for event in events:
            wire = project(event, audience, who is not None and event.actor == who)  # type: ignore[arg-type]
            if wire is not None:
                apply(client, Event.from_wire(copy.deepcopy(wire)))
            if event.seq == seq:
                break
        got = client.view(audience, who)  # type: ignore[arg-type]
        want = views[(audience, who)]
        # A client does not learn of events hidden from it, so only its seq and t may lag.
        assert {k: v for k, v in got.items() if k not in ("seq", "t")} == {
            k: v for k, v in want.items() if k not in ("seq", "t")
        }, f"{audience}:{who} at seq {seq}"
        assert got["seq"] <= want["seq"]


def test_projection_returns_the_wire_itself_when_nothing_is_hidden(session: Recorder):
    for event in session.events:
        if event.type not in PROJECTIONS:
            for audience in AUDIENCES:
                assert project(event, audience) is event.wire()
                assert project(event, audience, True) is event.wire()


def test_learners_never_see_live_counts_or_other_voters(session: Recorder):
    for event in session.events:
        copy_ = project(event, "learner", False)
        if event.type == "poll.voted":
            assert copy_ is None
        if event.type == "poll.closed":
            assert copy_ is not None and set(copy_["data"]) == {"poll_id"}
        if event.type in ("qa.upvoted", "qa.unvoted"):
            assert copy_ is not None and copy_["actor"] is None
        if event.type == "qa.asked" and event.data["anonymous"]:
            assert copy_ is not None and copy_["actor"] is None and copy_["data"]["name"] is None
        if event.type == "poll.opened" and event.data["quiz"]:
            assert copy_ is not None and copy_["data"]["correct"] is None


def test_replaying_the_full_log_rebuilds_the_same_state(session: Recorder):
    rebuilt = replay(session.events)
    for audience, who in session.VIEWERS:
        assert rebuilt.view(audience, who) == session.state.view(audience, who)  # type: ignore[arg-type]
    assert rebuilt.undo == session.state.undo
    assert rebuilt.redo == session.state.redo
    assert rebuilt.board["index"] == session.state.board["index"]
    assert rebuilt.seq == session.state.seq == len(session.events)


def test_replaying_twice_or_out_of_date_events_changes_nothing(session: Recorder):
    rebuilt = replay(session.events)
    view = rebuilt.view("trainer", TRAINER_ID)
    for event in session.events:
        apply(rebuilt, event)
    assert rebuilt.view("trainer", TRAINER_ID) == view


def test_wire_round_trip_replays_the_same(session: Recorder):
    rebuilt = replay([Event.from_wire(copy.deepcopy(e.wire())) for e in session.events])
    assert rebuilt.view("trainer", TRAINER_ID) == session.state.view("trainer", TRAINER_ID)
    assert rebuilt.undo == session.state.undo


def drawing_session() -> Harness:
    """A live session with a whiteboard history for three people, left mid-way through undos."""
    h = Harness(SessionCore(SESSION_ID, TITLE))
    h.join(TRAINER_ID, "Tess", "trainer")
    h.join(A, "Ada", "learner")
    h.join(B, "Bob", "learner")
    h.run(TRAINER_ID, "session.start", {})
    h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True})
    line = {"kind": "line", "x1": 1, "y1": 1, "x2": 2, "y2": 2}
    t1 = h.run(TRAINER_ID, "wb.shape", line).reply["id"]
    a1 = h.run(A, "wb.stroke.begin", {"points": [1, 1]}).reply["id"]
    h.run(A, "wb.stroke.extend", {"element_id": a1, "points": [2, 2]})
    h.run(A, "wb.stroke.end", {"element_id": a1})
    h.run(B, "wb.shape", line)
    h.run(TRAINER_ID, "wb.erase", {"element_id": a1})
    h.run(A, "wb.shape", line)
    h.run(TRAINER_ID, "wb.page.add", {})
    h.run(TRAINER_ID, "wb.text", {"x": 1, "y": 1, "text": "page 2"})
    h.run(TRAINER_ID, "wb.clear", {"page_id": "w1"})
    h.run(TRAINER_ID, "wb.undo", {})
    h.run(TRAINER_ID, "wb.undo", {})
    h.run(B, "wb.undo", {})
    h.run(A, "wb.undo", {})
    h.run(A, "wb.redo", {})
    h.run(TRAINER_ID, "wb.erase", {"element_id": t1})
    return h


@pytest.mark.parametrize(
    "steps",
    [
        [(TRAINER_ID, "wb.undo")],
        [(TRAINER_ID, "wb.undo"), (TRAINER_ID, "wb.undo"), (TRAINER_ID, "wb.undo")],
        [(TRAINER_ID, "wb.redo"), (TRAINER_ID, "wb.undo")],
        [(A, "wb.undo"), (A, "wb.undo"), (A, "wb.redo")],
        [(B, "wb.redo"), (B, "wb.undo"), (B, "wb.undo")],
        [(A, "wb.redo"), (TRAINER_ID, "wb.undo"), (A, "wb.undo"), (TRAINER_ID, "wb.redo")],
    ],
)
def test_undo_after_a_replay_behaves_the_same(steps: list[tuple[str, str]]):
    live = drawing_session()
    restarted = SessionCore(SESSION_ID, TITLE)
    for event in live.events:
        restarted.apply(event)
    assert restarted.state.view("trainer") == live.state.view("trainer")
    t = live.clock
    for pid, name in steps:
        t += 1000
        results = []
        for core in (live.core, restarted):
            try:
                out = core.execute(pid, name, {}, t)
                results.append(("ok", [e.wire() for e in out.events]))
            except Exception as exc:  # a refusal must be the same refusal
                results.append(("error", getattr(exc, "code", repr(exc))))
        assert results[0] == results[1], (pid, name)
        assert restarted.state.view("trainer") == live.core.state.view("trainer")
        assert restarted.state.undo == live.core.state.undo
        assert restarted.state.redo == live.core.state.redo


def test_the_drawing_session_history_is_not_trivial():
    live = drawing_session()
    assert {pid for pid, stack in live.state.undo.items() if stack} == {TRAINER_ID, A}
    assert {pid for pid, stack in live.state.redo.items() if stack} == {B}


def test_client_state_has_no_history():
    live = drawing_session()
    client = SessionState.from_view(live.state.view("learner", A), A)
    assert client.history is False
    assert client.undo == {} and client.redo == {}
    for event in live.events:
        apply(client, event)  # already folded: ignored
    assert client.undo == {}
