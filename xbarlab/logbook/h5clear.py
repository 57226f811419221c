"""Clear the "file is open for writing" flags a killed writer leaves in an HDF5 superblock.

A file created with ``libver="latest"`` (superblock version 2 or 3) carries file-consistency
flags that the HDF5 library sets while a writer has the file open and clears on close. A
process killed with SIGKILL leaves them set, and the library then refuses to open the file
("file is already open for write"). This module does what the HDF5 ``h5clear -s`` tool does:
zero the flags and rewrite the superblock checksum (Jenkins lookup3, as the HDF5 format
specification prescribes). It refuses to touch a file whose superblock checksum is wrong.

A writer killed in SWMR mode can also leave objects beyond the end of allocation (EOA) its
superblock records: the library updates the superblock's EOA lazily, and a non-SWMR open then
fails with "addr overflow". :func:`extend_eoa` does what ``h5clear --increment`` does: it sets the
EOA to the larger of the recorded EOA and the file's size plus an increment (allocated-but-unwritten
chunks can lie past the end of file) and extends the file to it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (the HDF5 metadata checksum)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    pos = 0
    while length - pos > 12:
        w0, w1, w2 = struct.unpack_from("<3I", data, pos)
        a, b, c = (a + w0) & _MASK, (b + w1) & _MASK, (c + w2) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK  # noqa: E702
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK  # noqa: E702
        pos += 12
    tail = data[pos:]
    if not tail:
        return c
    tail = tail + b"\0" * (12 - len(tail))
    w0, w1, w2 = struct.unpack("<3I", tail)
    a, b, c = (a + w0) & _MASK, (b + w1) & _MASK, (c + w2) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _MASK  # noqa: E702
    return c


def _superblock(head: bytes) -> tuple[int, int, int] | None:
    """(version, flags offset, checksum offset) of a v2/v3 superblock at offset 0, else None."""
    if not head.startswith(SIGNATURE) or len(head) < 12:
        return None
    version, size_offsets = head[8], head[9]
    if version not in (2, 3):
        return None
    return version, 11, 12 + 4 * size_offsets


EOA_INCREMENT = 1 << 20  # bytes added past max(EOA, EOF), as h5clear --increment does by default


def consistency_flags(path: str | Path) -> int | None:
    """The superblock's file-consistency flags (0 = cleanly closed), or None if not a v2/v3 file."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    sb = _superblock(head)
    return None if sb is None else head[sb[1]]


def clear_consistency_flags(path: str | Path) -> bool:
    """Zero the flags of a file left open by a killed writer. Returns True if anything changed.

    Raises ValueError if the superblock checksum does not verify (the file is damaged).
    """
    with open(path, "r+b") as fh:
        head = fh.read(64)
        sb = _superblock(head)
        if sb is None:
            return False
        _, flags_at, sum_at = sb
        stored = struct.unpack_from("<I", head, sum_at)[0]
        if lookup3(head[:sum_at]) != stored:
            raise ValueError(f"{path}: HDF5 superblock checksum does not verify")
        if head[flags_at] == 0:
            return False
        fixed = bytearray(head[:sum_at])
        fixed[flags_at] = 0
        fh.seek(flags_at)
        fh.write(b"\0")
        fh.seek(sum_at)
        fh.write(struct.pack("<I", lookup3(bytes(fixed))))
        fh.flush()
        os.fsync(fh.fileno())
    return True


def recovered_superblock(head: bytes, file_size: int, increment: int = EOA_INCREMENT) -> tuple[bytes, int, int] | None:
    """The first bytes of a file (``head``, at least 64) with the consistency flags cleared and the end of
    allocation set to max(EOA, ``file_size``) + ``increment``: (new head, old EOA, new EOA), or None if not
    a v2/v3 superblock with 8-byte offsets. Raises ValueError if the superblock checksum does not verify."""
    sb = _superblock(head)
    if sb is None or head[9] != 8:
        return None
    _, flags_at, sum_at = sb
    if lookup3(head[:sum_at]) != struct.unpack_from("<I", head, sum_at)[0]:
        raise ValueError("HDF5 superblock checksum does not verify")
    base, _, eoa = struct.unpack_from("<3Q", head, 12)
    new = max(eoa, file_size - base) + increment
    fixed = bytearray(head)
    fixed[flags_at] = 0
    struct.pack_into("<Q", fixed, 28, new)
    struct.pack_into("<I", fixed, sum_at, lookup3(bytes(fixed[:sum_at])))
    return bytes(fixed), eoa, new


def extend_eoa(path: str | Path, increment: int = EOA_INCREMENT) -> tuple[int, int] | None:
    """Set the superblock's end-of-allocation to max(EOA, file size) + ``increment`` bytes and extend the
    file to it (zeros). Returns (old EOA, new EOA), or None if not a v2/v3 superblock.

    Raises ValueError if the superblock checksum does not verify (the file is damaged).
    """
    with open(path, "r+b") as fh:
        head = fh.read(64)
        size = os.fstat(fh.fileno()).st_size
        try:
            fixed = recovered_superblock(head, size, increment)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if fixed is None:
            return None
        new_head, eoa, new = fixed
        flags = head[11]
        new_head = new_head[:11] + bytes([flags]) + new_head[12:]  # only the EOA here; the flags stay
        sum_at = 12 + 4 * 8
        new_head = new_head[:sum_at] + struct.pack("<I", lookup3(new_head[:sum_at])) + new_head[sum_at + 4:]
        fh.seek(0)
        fh.write(new_head[: sum_at + 4])
        fh.truncate(max(size, struct.unpack_from("<Q", head, 12)[0] + new))
        fh.flush()
    return eoa, new
