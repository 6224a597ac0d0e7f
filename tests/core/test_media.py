"""Live media in the pure core: the floor (who besides trainers may publish), the server's
`media.tracks`, their fold, projections, snapshot and replay."""

from __future__ import annotations

import pytest

from classroom.core import CommandError, SessionCore
from classroom.core.media import may_publish

from .conftest import L1, L2, TRAINER_ID, Harness, fold_projected, replay

CAM = {
    "id": f"{TRAINER_ID}:camera",
    "publisher": TRAINER_ID,
    "label": "camera",
    "kind": "video",
    "codec": "vp8",
}
MIC = {"id": f"{L1}:mic", "publisher": L1, "label": "mic", "kind": "audio", "codec": "opus"}


def test_the_floor_is_given_and_taken_by_trainers(h: Harness) -> None:
    assert not may_publish(h.state, L1, "mic")
    out = h.run(TRAINER_ID, "floor.give", {"id": L1})
    assert [(e.type, e.data) for e in out.events] == [("floor.given", {"id": L1, "camera": False})]
    assert h.state.view("learner", L2)["media"] == {"tracks": [], "floor": {L1: {"camera": False}}}
    assert may_publish(h.state, L1, "mic")
    assert not may_publish(h.state, L1, "camera")
    assert not may_publish(h.state, L1, "screen")
    assert not may_publish(h.state, L2, "mic")
    # The same grant again is a no-op; with the camera it is a new event.
    assert h.run(TRAINER_ID, "floor.give", {"id": L1}).events == []
    h.run(TRAINER_ID, "floor.give", {"id": L1, "camera": True})
    assert may_publish(h.state, L1, "camera") and not may_publish(h.state, L1, "screen")
    out = h.run(TRAINER_ID, "floor.take", {"id": L1})
    assert [(e.type, e.data) for e in out.events] == [("floor.taken", {"id": L1})]
    assert h.state.media["floor"] == {}
    assert not may_publish(h.state, L1, "mic")
    assert h.run(TRAINER_ID, "floor.take", {"id": L1}).events == []  # nothing to take


def test_trainers_may_publish_everything_without_the_floor(h: Harness) -> None:
    assert all(may_publish(h.state, TRAINER_ID, label) for label in ("mic", "camera", "screen"))
    assert not may_publish(h.state, TRAINER_ID, "speaker")
    assert not may_publish(h.state, "nobody", "mic")


def test_a_learner_gives_the_floor_back_but_takes_no_one_elses(h: Harness) -> None:
    h.run(TRAINER_ID, "floor.give", {"id": L1})
    h.refuse(L2, "floor.take", {"id": L1}, "forbidden")
    h.refuse(L1, "floor.give", {"id": L1}, "forbidden")
    assert [e.type for e in h.run(L1, "floor.take", {"id": L1}).events] == ["floor.taken"]


def test_bad_floor_commands_change_nothing(h: Harness) -> None:
    h.refuse(TRAINER_ID, "floor.give", {"id": "ghost"}, "not_found")
    h.refuse(TRAINER_ID, "floor.give", {"id": TRAINER_ID}, "invalid_payload")
    h.refuse(TRAINER_ID, "floor.give", {"id": L1, "camera": "yes"}, "invalid_payload")
    h.refuse(TRAINER_ID, "floor.give", {"id": L1, "mic": True}, "invalid_payload")
    h.refuse(TRAINER_ID, "floor.give", {}, "invalid_payload")
    h.refuse(TRAINER_ID, "floor.take", {"id": "ghost"}, "not_found")


def test_the_floor_needs_a_live_session(fresh: Harness) -> None:
    fresh.refuse(TRAINER_ID, "floor.give", {"id": L1}, "session_not_live")
    assert not may_publish(fresh.state, TRAINER_ID, "mic")


def test_media_tracks_come_from_the_server_and_fold_into_every_view(h: Harness) -> None:
    snapshot = h.state.view("learner", L2)
    h.run(TRAINER_ID, "floor.give", {"id": L1})
    events = h.core.media_tracks([CAM, MIC], 123_000)
    h.events.extend(events)
    assert [(e.type, e.actor, e.data) for e in events] == [("media.tracks", None, {"tracks": [CAM, MIC]})]
    assert h.core.media_tracks([CAM, MIC], 124_000) == []  # no change, no event
    for audience, viewer in (("trainer", TRAINER_ID), ("learner", L2)):
        assert h.state.view(audience, viewer)["media"] == {
            "tracks": [CAM, MIC],
            "floor": {L1: {"camera": False}},
        }
    # A client folding from its snapshot and the replay from nothing agree with the server.
    new = [e for e in h.events if e.seq > snapshot["seq"]]
    assert fold_projected(snapshot, L2, "learner", new).view("learner", L2) == h.state.view("learner", L2)
    assert replay(h.events).view("trainer") == h.state.view("trainer")


@pytest.mark.parametrize(
    "tracks",
    [
        "nope",
        [{"id": "x:mic", "publisher": "x", "label": "mic", "kind": "video", "codec": "opus"}],
        [{"id": "y:mic", "publisher": "x", "label": "mic", "kind": "audio", "codec": "opus"}],
        [{"id": "x:voice", "publisher": "x", "label": "voice", "kind": "audio", "codec": "opus"}],
        [{"id": "x:mic", "publisher": "x", "label": "mic", "kind": "audio", "codec": "mp3"}],
        [dict(CAM)] * 61,
    ],
)
def test_bad_track_lists_are_refused(h: Harness, tracks) -> None:
    seq = h.state.seq
    with pytest.raises(CommandError):
        h.core.media_tracks(tracks, 1)
    assert h.state.seq == seq and h.state.media["tracks"] == []


def test_tracks_end_with_the_session_and_are_not_told_after(h: Harness) -> None:
    h.events.extend(h.core.media_tracks([CAM], 1))
    out = h.run(TRAINER_ID, "session.end", {})
    assert [(e.type, e.data) for e in out.events] == [
        ("media.tracks", {"tracks": []}),
        ("session.ended", {"reason": "trainer"}),
    ]
    assert h.core.media_tracks([CAM], 2) == []
    core = SessionCore("s2", "Idle")
    core.join(TRAINER_ID, "Tess", "trainer", 0)
    core.execute(TRAINER_ID, "session.start", {}, 0)
    core.media_tracks([CAM], 1)
    assert [e.type for e in core.end("idle", 2)] == ["media.tracks", "session.ended"]
    assert core.state.media["tracks"] == []


def test_tracks_are_not_told_before_the_session_is_live(fresh: Harness) -> None:
    assert fresh.core.media_tracks([CAM], 1) == []


def test_a_snapshot_without_media_loads_empty(h: Harness) -> None:
    from classroom.core import SessionState

    view = h.state.view("learner", L1)
    del view["media"]
    assert SessionState.from_view(view, L1).media == {"tracks": [], "floor": {}}
