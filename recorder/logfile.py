"""An append-only file of records: `<u32 length><u32 crc32><msgpack payload>`.

A crash can leave a torn tail (a partial header or payload, bytes whose checksum fails, or zeros: a
zero-length record with checksum 0 would pass, so no record is empty). Readers stop at the first bad
record and report where; writers cut the file back to the last good record before appending, so a
torn tail is never read as data. A file's own notion of a good record (it decodes, its seq follows
the previous one) is a `check` on the payload, applied by readers and writers alike.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

_HEADER = struct.Struct("<II")
KEEP_COPY_ABOVE = 64 * 1024  # a torn write is smaller than this; more is damage worth keeping
MAX_RECORD = 64 * 1024 * 1024
TORN = ("torn record header", "truncated record")  # what a write cut short by a crash leaves

Check = Callable[[bytes], bool]


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def pack(obj: Any) -> bytes:
    return frame(msgpack.packb(obj, use_bin_type=True))


@dataclass
class ScanResult:
    good_end: int  # offset just past the last good record
    size: int  # the file's size when scanned
    error: str | None  # why scanning stopped early, if it did

    @property
    def torn(self) -> bool:
        return self.good_end < self.size


def iter_records(
    data: bytes | memoryview, start: int = 0, check: Check | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, end, payload) for each good record; stop at the first bad one (cut short,
    empty, failing its checksum, or refused by `check`)."""
    view = memoryview(data)
    pos = start
    size = len(view)
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(view, pos)
        end = pos + _HEADER.size + length
        if length == 0 or length > MAX_RECORD or end > size:
            return
        payload = bytes(view[pos + _HEADER.size : end])
        if zlib.crc32(payload) != crc or (check is not None and not check(payload)):
            return
        yield pos, end, payload
        pos = end


def describe(data: bytes | memoryview, pos: int) -> str | None:
    """Why the record at `pos` is not good (None at the end of `data`)."""
    size = len(data)
    if pos >= size:
        return None
    if size - pos < _HEADER.size:
        return f"torn record header at byte {pos}"
    length, crc = _HEADER.unpack_from(data, pos)
    if length == 0:
        return f"empty record at byte {pos}"
    if pos + _HEADER.size + length > size:
        return f"truncated record at byte {pos}"
    if (
        length > MAX_RECORD
        or zlib.crc32(memoryview(data)[pos + _HEADER.size : pos + _HEADER.size + length]) != crc
    ):
        return f"checksum mismatch at byte {pos}"
    return f"unreadable record at byte {pos}"


def scan(data: bytes | memoryview, start: int = 0, check: Check | None = None) -> ScanResult:
    """Where the good records of `data` end, and what stopped the scan."""
    end = start
    for record in iter_records(data, start, check):
        end = record[1]
    return ScanResult(end, len(data), describe(data, end))


def damaged_copy(path: Path) -> Path:
    """Keep a copy of a file about to be cut, named `<name>.damaged-<unix time>[-n]`."""
    base = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    copy, n = base, 1
    while copy.exists():
        copy, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        shutil.copyfile(path, copy)
    except OSError:
        # No room for the copy (a full disk): nothing is cut until there is, so the damaged
        # part can still be looked at; the caller reports the error.
        copy.unlink(missing_ok=True)
        raise
    return copy


class Appender:
    """Appends framed records to one file; `sync` makes them durable (fsync).

    `size` is always where the last whole record ends: a write that fails or comes up short is
    cut back to it, so a retry never follows torn bytes nor leaves a gap of zeros."""

    def __init__(self, path: Path, verify: str = "all", check: Check | None = None, start: int = 0) -> None:
        """`verify="all"` checks every record from `start` (checksum, and `check`) on open;
        `start` is where the records known good (by a checksum of the bytes before it) end.
        `"last"` walks the headers and checks only the last record (the only one a crash can
        tear), for files of large records whose readers verify each record when they read it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._cut_pending = False
        if verify == "all":
            with open(self._fd, "rb", closefd=False) as f:
                result = scan(f.read(), start, check)
        else:
            result = self._scan_last()
        self.repaired = result.error if result.torn else None
        self.damaged_copy: Path | None = None
        if result.torn:
            assert result.error is not None
            plain_tear = result.error.startswith(TORN)
            if not plain_tear or result.size - result.good_end > KEEP_COPY_ABOVE:
                # More than a write cut short: damage, zeros, or a record that does not belong.
                # Keep a copy of everything before cutting, so what follows can be looked at.
                self.damaged_copy = damaged_copy(path)
            # Cut the torn tail so new records follow the last good one.
            os.ftruncate(self._fd, result.good_end)
            os.fsync(self._fd)
        self.size = result.good_end

    def _scan_last(self) -> ScanResult:
        size = os.fstat(self._fd).st_size
        pos, last = 0, None
        while pos + _HEADER.size <= size:
            length, _ = _HEADER.unpack(os.pread(self._fd, _HEADER.size, pos))
            if length == 0 or pos + _HEADER.size + length > size:
                break
            last, pos = pos, pos + _HEADER.size + length
        if last is not None:
            length, crc = _HEADER.unpack(os.pread(self._fd, _HEADER.size, last))
            if zlib.crc32(os.pread(self._fd, length, last + _HEADER.size)) != crc:
                return ScanResult(last, size, f"checksum mismatch at byte {last}")
        if pos == size:
            return ScanResult(pos, size, None)
        head = os.pread(self._fd, _HEADER.size, pos)
        error = describe(head, 0) or "torn record header"
        return ScanResult(pos, size, error.replace("byte 0", f"byte {pos}"))

    def write(self, blob: bytes) -> int:
        """Append already framed bytes, all of them or none; returns the offset they start at."""
        offset = self.size
        if self._cut_pending:
            self._cut(offset)
        view = memoryview(blob)
        done = 0
        try:
            while done < len(view):
                # A short count (the disk filling up) is not an error yet: write the rest, and
                # the next call reports why it cannot.
                n = os.pwrite(self._fd, view[done:], offset + done)
                if n <= 0:
                    raise OSError(errno.EIO, f"no progress writing {self.path.name}")
                done += n
        except OSError:
            # A partial write must not stay behind: the next records would follow torn bytes.
            self._cut(offset)
            raise
        self.size = offset + len(blob)
        return offset

    def _cut(self, offset: int) -> None:
        """Cut the file back to `offset` (never beyond its end: that would pad it with zeros)."""
        try:
            os.ftruncate(self._fd, min(offset, os.fstat(self._fd).st_size))
            self._cut_pending = False
        except OSError:
            self._cut_pending = True  # try again before the next write

    def sync(self) -> None:
        os.fsync(self._fd)

    def append_durable(self, blob: bytes) -> int:
        """Append and fsync; if either fails, cut the file back so a retry does not write the
        records twice. Returns the offset the blob starts at."""
        offset = self.write(blob)
        try:
            self.sync()
        except OSError:
            self.size = offset
            self._cut(offset)
            raise
        return offset

    def truncate(self, offset: int) -> None:
        """Drop everything from `offset` on (records found not to belong, e.g. by a caller)."""
        os.ftruncate(self._fd, offset)
        os.fsync(self._fd)
        self.size = offset

    def close(self) -> None:
        os.close(self._fd)
