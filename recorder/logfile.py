"""An append-only file of records: `<u32 length><u32 crc32><msgpack payload>`.

A crash can leave a torn tail (a partial header or payload, or bytes whose checksum fails). Readers
stop at the first bad record and report where; writers cut the file back to the last good record
before appending, so a torn tail is never read as data.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

_HEADER = struct.Struct("<II")
KEEP_COPY_ABOVE = 64 * 1024  # a torn write is smaller than this; more is damage worth keeping
MAX_RECORD = 64 * 1024 * 1024


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


def iter_records(data: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, end, payload) for each good record; stop at the first bad one."""
    view = memoryview(data)
    pos = start
    size = len(view)
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(view, pos)
        end = pos + _HEADER.size + length
        if length > MAX_RECORD or end > size:
            return
        payload = bytes(view[pos + _HEADER.size : end])
        if zlib.crc32(payload) != crc:
            return
        yield pos, end, payload
        pos = end


def scan(data: bytes, start: int = 0) -> ScanResult:
    """Where the good records of `data` end, and what stopped the scan."""
    end = start
    for record in iter_records(data, start):
        end = record[1]
    error = None
    if end < len(data):
        remaining = len(data) - end
        if remaining < _HEADER.size:
            error = f"torn record header at byte {end}"
        else:
            length, _crc = _HEADER.unpack_from(data, end)
            if end + _HEADER.size + length > len(data):
                error = f"truncated record at byte {end}"
            else:
                error = f"checksum mismatch at byte {end}"
    return ScanResult(end, len(data), error)


class Appender:
    """Appends framed records to one file; `sync` makes them durable (fsync)."""

    def __init__(self, path: Path, verify: str = "all") -> None:
        """`verify="all"` checks every record's checksum on open; `"last"` walks the headers
        and checks only the last record (the only one a crash can tear), for files of large
        records whose readers verify each record when they read it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        result = scan(self._file.read()) if verify == "all" else self._scan_last()
        self.repaired = result.error if result.torn else None
        if result.torn:
            if result.size - result.good_end > KEEP_COPY_ABOVE:
                # More than a torn write: damage inside the file. Keep a copy of everything
                # before cutting, so what follows the damage can still be recovered by hand.
                shutil.copyfile(path, path.with_name(f"{path.name}.damaged-{int(time.time())}"))
            # Cut the torn tail so new records follow the last good one.
            self._file.truncate(result.good_end)
            os.fsync(self._file.fileno())
        self._file.seek(result.good_end)
        self.size = result.good_end

    def _scan_last(self) -> ScanResult:
        size = os.fstat(self._file.fileno()).st_size
        pos, last = 0, None
        while pos + _HEADER.size <= size:
            self._file.seek(pos)
            length, _ = _HEADER.unpack(self._file.read(_HEADER.size))
            if pos + _HEADER.size + length > size:
                break
            last, pos = pos, pos + _HEADER.size + length
        if last is not None:
            self._file.seek(last)
            length, crc = _HEADER.unpack(self._file.read(_HEADER.size))
            if zlib.crc32(self._file.read(length)) != crc:
                return ScanResult(last, size, f"checksum mismatch at byte {last}")
        error = None if pos == size else f"truncated record at byte {pos}"
        return ScanResult(pos, size, error)

    def write(self, blob: bytes) -> int:
        """Append already framed bytes; returns the offset they start at."""
        offset = self.size
        try:
            self._file.write(blob)
        except OSError:
            # A partial write must not stay behind: the next records would follow torn bytes.
            self._file.truncate(offset)
            self._file.seek(offset)
            raise
        self.size += len(blob)
        return offset

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def append_durable(self, blob: bytes) -> int:
        """Append and fsync; if either fails, cut the file back so a retry does not write the
        records twice. Returns the offset the blob starts at."""
        offset = self.write(blob)
        try:
            self.sync()
        except OSError:
            self.size = offset
            try:
                self._file.truncate(offset)
                self._file.seek(offset)
            except OSError:
                pass
            raise
        return offset

    def close(self) -> None:
        self._file.close()
