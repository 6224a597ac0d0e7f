"""The manifest's chapters as the index builds them: trainer marks and page changes, a page named
by its place among the pages (its id kept), polls apart; the numbering survives the saved index."""

from __future__ import annotations

import msgpack

from recorder.index import Index
from recorder.logfile import frame, iter_records


def _add(ix: Index, type_: str, data: dict) -> None:
    seq = len(ix.seqs) + 1
    ix.add(seq, seq * 1000, type_, data, 0, seq * 10)


def test_pages_are_numbered_in_the_order_they_were_made_and_polls_are_no_chapters():
    ix = Index()
    _add(ix, "chapter.marked", {"id": "c1", "title": "Intro"})
    _add(ix, "poll.opened", {"id": "p2", "question": "Ready?"})
    _add(ix, "wb.page.added", {"page": "w117"})
    _add(ix, "wb.page.switched", {"page": "w117"})
    _add(ix, "wb.page.switched", {"page": "w1"})
    _add(ix, "qa.asked", {"id": "q6", "text": "Why?", "anonymous": True, "name": "Ada"})
    assert ix.chapters == [
        {"t": 1000, "kind": "mark", "id": "c1", "title": "Intro"},
        {"t": 4000, "kind": "page", "page": "w117", "title": "Whiteboard page 2"},
        {"t": 5000, "kind": "page", "page": "w1", "title": "Whiteboard page 1"},
    ]
    assert ix.polls == [{"t": 2000, "id": "p2", "question": "Ready?"}]
    assert ix.questions == [{"t": 6000, "id": "q6", "text": "Why?"}]  # no name: markers only

    # A reader that loads the saved index goes on numbering where the writer was.
    again = Index.loads(ix.dumps())
    assert again is not None
    assert (again.chapters, again.polls, again.questions) == (ix.chapters, ix.polls, ix.questions)
    _add(again, "wb.page.added", {"page": "w300"})
    _add(again, "wb.page.switched", {"page": "w300"})
    _add(again, "wb.page.switched", {"page": "w117"})
    assert [c["title"] for c in again.chapters[-2:]] == ["Whiteboard page 3", "Whiteboard page 2"]


def test_an_index_saved_by_an_older_version_is_not_trusted():
    ix = Index()
    _add(ix, "wb.page.switched", {"page": "w1"})
    blob = ix.dumps()
    assert Index.loads(blob) is not None
    d = msgpack.unpackb(next(iter_records(blob))[2], raw=False)
    d["v"] = 2  # chapters named by page id, polls among the chapters: scan the log again
    assert Index.loads(frame(msgpack.packb(d, use_bin_type=True))) is None
