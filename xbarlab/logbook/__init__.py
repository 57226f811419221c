"""The HDF5 logbook: crash-safe writer, SWMR reader, instrument transcripts, offline replay.

See docs/logbook.md for the file layout; ``from xbarlab.logbook.replay import replay``
re-runs a logged campaign offline.
"""

from xbarlab.errors import LogbookError, ReplayDivergence
from xbarlab.logbook.reader import LogReader, StreamData
from xbarlab.logbook.summary import summary
from xbarlab.logbook.writer import Logbook, RunWriter

__all__ = ["LogReader", "Logbook", "LogbookError", "ReplayDivergence", "RunWriter", "StreamData", "summary"]
