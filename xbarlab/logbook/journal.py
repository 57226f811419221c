"""Structural changes of a logbook made atomic against SIGKILL with a redo journal.

Outside SWMR mode the HDF5 library writes metadata in no particular order, so a process killed
while it flushes a new group, dataset or attribute can leave a parent pointing at an object that
was never written, or beyond the end of allocation the superblock records ("addr overflow").
The writer therefore never lets HDF5 write such a change to the log directly:

1. HDF5 works on an :class:`OverlayFile`: reads come from the log, writes land in memory pages.
2. When HDF5 has closed the overlay (a complete, consistent file image), the changed pages and the
   final size go to a side file ``LOG.h5.journal``, closed by a CRC-32 (:func:`write_journal`).
3. Only then are the pages written into the log, and the journal is removed.

A kill before step 3 leaves the log as it was before the change (an incomplete journal is
ignored); a kill during step 3 leaves a complete journal, which :func:`apply_journal` replays
(idempotent: it writes the same pages again). Readers apply it to an in-memory view, never to the log.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

PAGE = 4096  # bytes per overlay page
MAGIC = b"XBLJRNL1"
TRAILER = b"JEND"
_HEAD = struct.Struct("<8sQI")  # magic, final file size (bytes), number of pages
_ENTRY = struct.Struct("<QI")  # offset (bytes), length (bytes)


def journal_path(path: str | Path) -> Path:
    """The journal file of log ``path`` (next to it)."""
    p = Path(path)
    return p.with_name(p.name + ".journal")


class OverlayFile:
    """A file object for h5py's ``fileobj`` driver: reads the log, keeps every write in memory pages."""

    def __init__(self, path: str | Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._orig_size = os.fstat(self._fd).st_size  # bytes of the log still visible through the overlay
        self.size = self._orig_size  # bytes, the overlay's current end of file
        self.pages: dict[int, bytearray] = {}
        self._pos = 0

    # -- what h5py's fileobj driver calls ---------------------------------------------------
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self._pos + n)
        out = self._read_at(self._pos, max(0, end - self._pos))
        self._pos += len(out)
        return out

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        memoryview(buf).cast("B")[: len(data)] = data
        return len(data)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        pos, done = self._pos, 0
        while done < len(view):
            page, at = divmod(pos, PAGE)
            take = min(PAGE - at, len(view) - done)
            self._page(page)[at: at + take] = view[done: done + take]
            pos += take
            done += take
        self._pos = pos
        self.size = max(self.size, pos)
        return done

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size < self.size:
            self._orig_size = min(self._orig_size, size)
            for page in [p for p in self.pages if p * PAGE >= size]:
                del self.pages[page]
            page, at = divmod(size, PAGE)
            if at and page in self.pages:
                self.pages[page][at:] = bytes(PAGE - at)
        self.size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- internals ----------------------------------------------------------------------------
    def _original(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self._orig_size - offset))
        data = os.pread(self._fd, n, offset) if n else b""
        return data

    def _page(self, page: int) -> bytearray:
        buf = self.pages.get(page)
        if buf is None:
            data = self._original(page * PAGE, PAGE)
            buf = self.pages[page] = bytearray(data + bytes(PAGE - len(data)))
        return buf

    def _read_at(self, offset: int, n: int) -> bytes:
        parts = []
        while n > 0:
            page, at = divmod(offset, PAGE)
            take = min(PAGE - at, n)
            buf = self.pages.get(page)
            if buf is not None:
                parts.append(bytes(buf[at: at + take]))
            else:
                data = self._original(offset, take)
                parts.append(data + bytes(take - len(data)))
            offset += take
            n -= take
        return b"".join(parts)

    def changes(self) -> list[tuple[int, bytes]]:
        """The pages written (offset, bytes), clipped to the final size, in file order."""
        out = []
        for page in sorted(self.pages):
            start = page * PAGE
            if start < self.size:
                out.append((start, bytes(self.pages[page][: min(PAGE, self.size - start)])))
        return out


def write_journal(path: str | Path, size: int, changes: list[tuple[int, bytes]]) -> Path:
    """Write the journal of a structural change of log ``path``: its final size (bytes) and changed pages."""
    parts = [_HEAD.pack(MAGIC, size, len(changes))]
    for offset, data in changes:
        parts += [_ENTRY.pack(offset, len(data)), data]
    body = b"".join(parts)
    jp = journal_path(path)
    with open(jp, "wb") as fh:
        fh.write(body + struct.pack("<I", zlib.crc32(body)) + TRAILER)
    return jp


def read_journal(path: str | Path) -> tuple[int, list[tuple[int, bytes]]] | None:
    """The complete journal of log ``path`` as (final size, changes), or None when there is none or it is
    incomplete (the writer died before it was finished: the log itself was not touched)."""
    try:
        raw = journal_path(path).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) < _HEAD.size + 8 or raw[-4:] != TRAILER:
        return None
    body, crc = raw[:-8], struct.unpack("<I", raw[-8:-4])[0]
    if zlib.crc32(body) != crc:
        return None
    magic, size, count = _HEAD.unpack_from(body)
    if magic != MAGIC:
        return None
    changes, pos = [], _HEAD.size
    for _ in range(count):
        offset, length = _ENTRY.unpack_from(body, pos)
        pos += _ENTRY.size
        changes.append((offset, body[pos: pos + length]))
        pos += length
    return size, changes


def apply_changes(path: str | Path, size: int, changes: list[tuple[int, bytes]]) -> None:
    """Write the changed pages into ``path`` and set its size (bytes)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, data in changes:
            os.pwrite(fd, data, offset)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def apply_journal(path: str | Path) -> str | None:
    """Finish the structural change a killed writer journaled: apply a complete journal to log ``path``,
    remove it and return a sentence saying so; an incomplete journal is removed unapplied (the log was
    untouched). None when there was no journal."""
    jp = journal_path(path)
    if not jp.exists():
        return None
    journal = read_journal(path)
    if journal is None:
        jp.unlink(missing_ok=True)
        return DISCARDED
    size, changes = journal
    apply_changes(path, size, changes)
    jp.unlink(missing_ok=True)
    return completed_note(len(changes))


DISCARDED = "a structural change the writer had not finished journaling was discarded (the log was untouched)"


def completed_note(pages: int) -> str:
    return f"a structural change interrupted while it was written was completed from its journal ({pages} pages)"
