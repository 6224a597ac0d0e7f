"""Live, replay and browser agree on the media state: a session with real publishing and the
floor given and taken, folded by the live clients, the replay's state and web/src/reducer.ts."""

from __future__ import annotations

import pytest

from classroom.keys import HUB
from tests.conftest import Server
from tests.recorder.test_replay_e2e import _json
from tests.web.test_reducer import FOLD_CLI, comparable, js_fold
from tests.webrtc.helpers import eventually
from tests.webrtc.socket_peers import SocketPublisher


@pytest.mark.skipif(not FOLD_CLI.exists(), reason="web bundle not built (make builds it)")
async def test_live_replay_and_browser_folds_agree_on_media(server: Server) -> None:
    info, trainer = await server.live_session("Media fold")
    ada = await server.client(info["join_url"], "Ada")
    tid, aid = trainer.you["id"], ada.you["id"]
    voice, learner_voice = SocketPublisher(trainer, video=False), SocketPublisher(ada, video=False)
    try:
        assert (await voice.publish())["ok"]
        await trainer.request("floor.give", id=aid, camera=True)
        await ada.wait_until(lambda: aid in ada.state.media["floor"], 10)
        assert (await learner_voice.publish())["ok"]
        both = [f"{tid}:mic", f"{aid}:mic"]
        await trainer.wait_until(lambda: [t["id"] for t in trainer.state.media["tracks"]] == both, 10)
        mid_view = ada.view()["media"]
        await trainer.request("floor.give", id=aid)  # narrowed to the mic: the mic stays
        await trainer.request("floor.take", id=aid)  # taken: the learner's mic ends
        await ada.wait_until(lambda: [t["id"] for t in ada.state.media["tracks"]] == both[:1], 10)
        await trainer.request("session.mark", title="after")
        final_live = ada.view()["media"]
    finally:
        await voice.close()
        await learner_voice.close()
    assert mid_view["floor"] == {aid: {"camera": True}} and len(mid_view["tracks"]) == 2
    assert final_live == {
        "tracks": [{"id": f"{tid}:mic", "publisher": tid, "label": "mic", "kind": "audio", "codec": "opus"}],
        "floor": {},
    }
    await trainer.request("session.end")
    # The session's media closes with it (the trainer's socket is still connected and publishing).
    await eventually(lambda: not server.app[HUB].media.rooms, 10, "the media closed at the end")

    rid, admin = info["id"], server.admin["Authorization"].split()[1]
    manifest = await _json(server, f"/api/recordings/{rid}", admin)
    for audience in ("learner", "trainer"):
        events = (await _json(server, f"/api/recordings/{rid}/events?audience={audience}", admin))["events"]
        types = [e["type"] for e in events]
        assert {"media.tracks", "floor.given", "floor.taken"} <= set(types)
        assert types[-2:] == ["media.tracks", "session.ended"]  # the tracks end with the session
        mark = next(e["t"] for e in events if e["type"] == "chapter.marked")
        for t in sorted({e["t"] for e in events if e["type"].startswith(("media.", "floor."))} | {mark}):
            server_view = await _json(server, f"/api/recordings/{rid}/state?t={t}&audience={audience}", admin)
            upto = [e for e in events if e["t"] <= t]
            browser = js_fold(
                view=None,
                id=rid,
                title=manifest["title"],
                recording="on",
                viewer=None,
                audience=audience,
                events=upto,
            )
            assert comparable(browser) == comparable(server_view), (audience, t)
            if t == mark:
                assert server_view["media"] == final_live
