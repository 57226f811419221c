"""Bring a log left by a killed writer back to a state the HDF5 library opens normally.

What a SIGKILL can leave, and what is done about it (each step returns a sentence for the user):

* a journal of an interrupted structural change (:mod:`xbarlab.logbook.journal`): a complete one
  is applied, an incomplete one discarded (the log was not touched yet);
* the superblock's "open for writing" flags (``h5clear -s``) and, after a kill in SWMR mode, an
  end of allocation short of the objects written (``h5clear --increment``): both are fixed
  (:mod:`xbarlab.logbook.h5clear`).

:func:`recover_in_place` is for a writer that holds the log's lock (``Logbook.open_append``);
:func:`recovered_view` is for readers, which never modify the log.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from xbarlab.logbook.h5clear import clear_consistency_flags, consistency_flags, extend_eoa, recovered_superblock
from xbarlab.logbook.journal import DISCARDED, OverlayFile, apply_journal, completed_note, journal_path, read_journal


def writer_alive(path: str | Path) -> bool:
    """Whether a process holds the writer's lock on ``path`` (a killed writer's lock is released by the OS)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe at once
    return False


def _fix_superblock(path: Path) -> list[str]:
    if not consistency_flags(path):
        return []
    clear_consistency_flags(path)
    eoa = extend_eoa(path)
    notes = ["the writing process ended without closing the file: its open-for-writing flags were cleared"]
    if eoa is not None and eoa[1] > eoa[0]:
        notes.append(f"the end of allocation was moved from {eoa[0]} to {eoa[1]} bytes (h5clear --increment)")
    return notes


def recover_in_place(path: str | Path) -> list[str]:
    """Recover the log itself (the caller holds its writer lock). Raises ValueError if the superblock is damaged."""
    p = Path(path)
    notes = []
    journal = apply_journal(p)
    if journal:
        notes.append(journal)
    return notes + _fix_superblock(p)


def recovered_view(path: str | Path) -> tuple[OverlayFile, list[str]]:
    """A read-only view of the log as recovery would leave it, for h5py's ``fileobj`` driver: the journal
    applied and the superblock fixed in memory pages; the log itself is not modified.
    Raises ValueError if the superblock is damaged."""
    view = OverlayFile(path)
    notes = []
    try:
        if journal_path(path).exists():
            journal = read_journal(path)
            if journal is None:
                notes.append(DISCARDED)
            else:
                size, changes = journal
                for offset, data in changes:
                    view.seek(offset)
                    view.write(data)
                view.truncate(size)
                notes.append(completed_note(len(changes)))
        view.seek(0)
        head = view.read(64)
        if len(head) >= 12 and head[11]:
            fixed = recovered_superblock(head, view.size)
            if fixed is not None:
                new_head, eoa, new = fixed
                view.seek(0)
                view.write(new_head[:48])
                view.truncate(max(view.size, new))
                if new > eoa:
                    notes.append(f"the end of allocation was moved from {eoa} to {new} bytes (h5clear --increment)")
        view.seek(0)
    except BaseException:
        view.close()
        raise
    return view, notes
