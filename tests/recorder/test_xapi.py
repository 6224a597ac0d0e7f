"""xAPI statements over HTTP, from the engagement report's scripted live session and two replay
viewers: each statement is valid by ralph's xAPI models, and says exactly what the script did
(who attended and how long, from the times the trainer saw; what each answered; who asked)."""

from __future__ import annotations

import uuid
from typing import Any

from ralph.models.xapi.base.statements import BaseXapiStatement

from recorder import xapi

from ..conftest import ADMIN_KEY
from .test_replay_features import fails, ok, token_of
from .test_report_api import joins_seen, live_script, seen

SPEED = 2


async def statements(server, rid: str, token: str = ADMIN_KEY, query: str = "") -> list[dict[str, Any]]:
    body = await ok(server, "GET", f"/api/sessions/{rid}/xapi{query}", token)
    assert body["more"] == "" and body["total"] == len(body["statements"])
    return body["statements"]


def by_verb(found: list[dict[str, Any]], verb: str) -> list[dict[str, Any]]:
    return [s for s in found if s["verb"]["id"] == verb]


async def viewers_watch(server, run: dict[str, Any]) -> dict[str, Any]:
    """Vera at 2x with a seek back and a skip, who asks a question; Walt watches it all and
    answers the quiz rightly. Returns what each covered, in milliseconds."""
    rid = run["info"]["id"]
    replay = token_of(run["info"]["replay_url"])
    base = f"/api/recordings/{rid}"
    duration = (await ok(server, "GET", base, replay))["duration_ms"]
    vera = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Vera"})
    walt = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Walt"})
    vera_ms: set[int] = set()
    for a, b in ((0, duration // 3), (duration // 6, duration // 2), (duration * 4 // 5, duration)):
        for lo in range(a, b, 1000 * SPEED):
            hi = min(b, lo + 1000 * SPEED)
            await ok(server, "POST", f"{base}/viewers/{vera['viewer_id']}/progress", vera["token"], 204,
                     json={"from": lo, "to": hi})  # fmt: skip
            vera_ms.update(range(lo, hi))
    question = await ok(
        server, "POST", f"{base}/questions", vera["token"], 201, json={"t": duration // 4, "text": "Eh?"}
    )
    for lo in range(0, duration, 1000):
        await ok(server, "POST", f"{base}/viewers/{walt['viewer_id']}/progress", walt["token"], 204,
                 json={"from": max(0, lo - 100), "to": min(duration, lo + 1000)})  # fmt: skip
    await ok(server, "POST", f"{base}/quiz/{run['quiz']}", walt["token"], json={"choices": [1]})
    await ok(server, "POST", f"{base}/quiz/{run['mood']}", walt["token"], json={"choices": [0]})
    return {"duration": duration, "vera": vera, "walt": walt, "vera_ms": vera_ms, "question": question}


def duration_ms(iso: str) -> int:
    """An ISO 8601 duration as this module writes them (PT[nH][nM][n[.nn]S]) in ms."""
    assert iso.startswith("PT")
    rest, total = iso[2:], 0.0
    for unit, factor in (("H", 3_600_000), ("M", 60_000), ("S", 1000)):
        if unit in rest:
            n, rest = rest.split(unit)
            total += float(n) * factor
    assert rest == ""
    return round(total)


async def test_statements_say_what_the_script_did(server):
    run = await live_script(server)
    info, trainer, learners = run["info"], run["trainer"], run["learners"]
    rid = info["id"]
    trainer_token = token_of(info["trainer_url"])
    s = run["script"]
    q1, _q2 = run["questions"]

    # While the session runs: no attendance yet (its duration is not known), the closed polls'
    # answers and the named question are final already.
    live = await statements(server, rid, trainer_token)
    assert by_verb(live, xapi.ATTENDED) == []
    assert len(by_verb(live, xapi.ANSWERED)) == 4

    await trainer.request("session.end")
    await learners["Ada"].wait_for("session.ended")
    start_t, end_t = run["start_t"], seen(trainer, "session.ended")["t"]
    watched = await viewers_watch(server, run)
    found = await statements(server, rid, trainer_token)
    for statement in found:
        BaseXapiStatement.model_validate(statement)
        assert statement["version"] == "1.0.3"
        assert statement["context"]["registration"] == xapi.statement_id(rid, "registration")
    assert len({st["id"] for st in found}) == len(found)
    assert found == await statements(server, rid), "built twice, the same statements"
    home = server.app[xapi_base_key()]

    pids = {name: c.you["id"] for name, c in learners.items()}
    names = {pid: name for name, pid in pids.items()}
    names[pids["Eve"]] = "=cmd|' /C calc'!A0"  # the name Eve joined with

    # Attended: each learner once, for the time the trainer saw them online.
    attended = {st["actor"]["account"]["name"]: st for st in by_verb(found, xapi.ATTENDED)}
    assert set(attended) == set(pids.values())
    for name, pid in pids.items():
        st = attended[pid]
        assert st["actor"] == {
            "objectType": "Agent",
            "name": names[pid],
            "account": {"homePage": home, "name": pid},
        }
        assert st["object"]["id"] == f"{home}/s/{rid}"
        present = sum(
            min(j["left"] if j["left"] is not None else end_t, end_t) - max(j["joined"], start_t)
            for j in joins_seen(trainer, pid)
        )
        assert duration_ms(st["result"]["duration"]) == (present + 5) // 10 * 10, name
        assert st["result"]["extensions"][xapi.EXT_PROGRESS] == round(present / (end_t - start_t), 4)

    # Answered live: the last choices of each named voter, right or wrong where the poll has a
    # correct answer.
    live_answers = {
        (st["actor"]["account"]["name"], st["object"]["id"].rsplit("/", 1)[1]): st["result"]
        for st in by_verb(found, xapi.ANSWERED)
        if st["actor"]["account"]["name"] in names
    }
    expected = {}
    for name, votes in s.votes.items():
        for poll, choices in votes.items():
            result: dict[str, Any] = {"response": "[,]".join(map(str, choices))}
            if poll == run["quiz"]:
                right = choices == [1]
                result |= {
                    "success": right,
                    "score": {"scaled": int(right), "raw": int(right), "min": 0, "max": 1},
                }
            expected[(pids[name], poll)] = result
    assert live_answers == expected

    # Asked: Ada's question; Bob's was anonymous and is nobody's.
    asked = by_verb(found, xapi.ASKED)
    live_asked = [st for st in asked if "/replay/" not in st["object"]["id"]]
    assert [(st["actor"]["account"]["name"], st["object"]["id"]) for st in live_asked] == [
        (pids["Ada"], f"{home}/s/{rid}/questions/{q1}")
    ]
    assert live_asked[0]["result"]["response"] == "What is a fold?"

    # Replay: what each viewer covered, as a share and as played segments.
    duration = watched["duration"]
    progressed = {st["actor"]["name"]: st for st in by_verb(found, xapi.PROGRESSED)}
    assert set(progressed) == {"Vera", "Walt"}
    vera = progressed["Vera"]
    assert vera["result"]["extensions"][xapi.EXT_PROGRESS] == round(len(watched["vera_ms"]) / duration, 4)
    segments = vera["context"]["extensions"][xapi.EXT_PLAYED].split("[,]")
    covered = {
        ms
        for seg in segments
        for ms in range(round(float(seg.split("[.]")[0]) * 1000), round(float(seg.split("[.]")[1]) * 1000))
    }
    assert covered == watched["vera_ms"]
    assert progressed["Walt"]["result"]["extensions"][xapi.EXT_PROGRESS] == 1.0
    assert progressed["Walt"]["context"]["extensions"][xapi.EXT_PLAYED] == f"0.0[.]{duration / 1000}"
    assert vera["context"]["contextActivities"]["parent"][0]["id"] == f"{home}/s/{rid}"
    walt_id = watched["walt"]["viewer_id"]
    walt_answers = {
        st["object"]["id"].rsplit("/", 1)[1]: st["result"]
        for st in by_verb(found, xapi.ANSWERED)
        if st["actor"]["account"]["name"] == walt_id
    }
    assert walt_answers == {
        run["quiz"]: {"response": "1", "success": True, "score": {"scaled": 1, "raw": 1, "min": 0, "max": 1}},
        run["mood"]: {"response": "0"},
    }
    replay_asked = [st for st in asked if st not in live_asked]
    assert [(st["actor"]["name"], st["result"]["response"]) for st in replay_asked] == [("Vera", "Eh?")]
    assert replay_asked[0]["context"]["extensions"][xapi.EXT_TIME] == duration // 4 / 1000
    assert len(found) == len(pids) + len(expected) + 1 + 2 + 2 + 1


def xapi_base_key():
    from recorder.api import XAPI_BASE

    return XAPI_BASE


async def test_xapi_route_auth_and_paging(server):
    run = await live_script(server)
    info = run["info"]
    rid = info["id"]
    await run["trainer"].request("session.end")
    await run["learners"]["Ada"].wait_for("session.ended")
    learner = token_of(info["join_url"])
    await fails(server, "GET", f"/api/sessions/{rid}/xapi", None, 401, "unauthorized")
    await fails(server, "GET", f"/api/sessions/{rid}/xapi", learner, 403, "forbidden")
    await fails(server, "GET", f"/api/sessions/{rid}/xapi?limit=0", ADMIN_KEY, 400, "out_of_range")
    await fails(server, "GET", f"/api/sessions/{rid}/xapi?limit=1001", ADMIN_KEY, 400, "out_of_range")
    await fails(server, "GET", "/api/sessions/nope/xapi", ADMIN_KEY, 404, "not_found")
    everything = await statements(server, rid)
    pages, path = [], f"/api/sessions/{rid}/xapi?limit=3"
    while path:
        body = await ok(server, "GET", path, ADMIN_KEY)
        assert body["total"] == len(everything) and len(body["statements"]) <= 3
        pages += body["statements"]
        path = body["more"]
    assert pages == everything


def test_completion_statement_by_email_or_account():
    """An assignment's completion: the assignee by e-mail where known, else by account."""
    from recorder.report import ReportFold

    fold = ReportFold()
    report = fold.report(0, None, {"duration_ms": 0})
    done = [
        xapi.Completion("s1", "a1", "Ann", 1_700_000_000.5, 0.97, email="ann@example.org", score=0.5),
        xapi.Completion("s1", "b2", "Ben", 1_700_000_100.0, 1.0),
    ]
    src = xapi.Source("s1", "Intro", "https://cc.example.org/", report, fold, 0, {}, completions=tuple(done))
    found = xapi.statements(src)
    again = xapi.statements(src)
    assert found == again
    ann, ben = found
    assert ann["actor"] == {"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"}
    assert ann["verb"]["id"] == xapi.COMPLETED and ann["timestamp"] == "2023-11-14T22:13:20.500Z"
    assert ann["result"] == {
        "completion": True,
        "extensions": {xapi.EXT_PROGRESS: 0.97},
        "score": {"scaled": 0.5},
    }
    assert ann["object"]["id"] == "https://cc.example.org/s/s1/replay/assignment"
    assert ben["actor"]["account"] == {"homePage": "https://cc.example.org", "name": "b2"}
    assert "score" not in ben["result"]
    assert ann["id"] == str(uuid.uuid5(xapi.NAMESPACE, "s1\x1fcompleted\x1fa1"))


def test_iso_durations():
    assert xapi.iso_duration(0) == "PT0S"
    assert xapi.iso_duration(1000) == "PT1S"
    assert xapi.iso_duration(3_723_450) == "PT1H2M3.45S"
    assert xapi.iso_duration(60_000) == "PT1M"
    assert xapi.iso_duration(5) == "PT0.01S"  # rounded to xAPI's 0.01 s


def test_lrs_flags_and_environment():
    """`--lrs-url`, `--lrs-user`, `--lrs-password` or their variables, flags first; a user or a
    password without a URL, or a URL that is not http(s), is refused in one line."""
    import pytest

    from classroom import __main__ as cli
    from classroom.config import ConfigError, from_args

    def settings(argv: list[str], env: dict[str, str]):
        return from_args(cli.build_parser().parse_args(["serve", *argv]), env)

    env = {
        "CLASSCAST_LRS_URL": "https://lrs.example.org/xAPI/",
        "CLASSCAST_LRS_USER": "cc",
        "CLASSCAST_LRS_PASSWORD": "pw",
    }
    s = settings([], env)
    assert (s.lrs_url, s.lrs_user, s.lrs_password) == ("https://lrs.example.org/xAPI", "cc", "pw")
    s = settings(["--lrs-url", "http://127.0.0.1:8100/xAPI", "--lrs-user", "other"], env)
    assert (s.lrs_url, s.lrs_user, s.lrs_password) == ("http://127.0.0.1:8100/xAPI", "other", "pw")
    assert settings([], {}).lrs_url is None
    with pytest.raises(ConfigError, match="need --lrs-url"):
        settings(["--lrs-user", "cc"], {})
    with pytest.raises(ConfigError, match="LRS URL"):
        settings(["--lrs-url", "lrs.example.org"], {})


def test_last_growth_is_that_of_the_merge():
    """`last_growth` in one pass agrees with merging every prefix of the reports (`report.merge`)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from recorder.report import merge

    def naive(reports: list[tuple[int, int]], limit: int) -> float:
        grew: float = -1
        for n in range(1, len(reports) + 1):
            size = sum(b - a for a, b in merge(reports[:n], limit))
            if size > sum(b - a for a, b in merge(reports[: n - 1], limit)):
                grew = n
        return grew

    interval = st.tuples(st.integers(-5, 60), st.integers(-5, 60))

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.lists(interval, max_size=25), st.integers(1, 50))
    def check(reports: list[tuple[int, int]], limit: int) -> None:
        timed = [(r, float(n)) for n, r in enumerate(reports, 1)]
        assert xapi.last_growth(timed, limit, -1) == naive(reports, limit)

    check()
