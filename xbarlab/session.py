"""A lab session (:mod:`xbarlab.runs.session`) with every built-in step type registered.

``from xbarlab.session import LabSession`` is how scripts, the CLI and the GUI open a bench::

    with LabSession.open(station=None, log="bench.h5") as lab:     # None: the embedded sim bench
        result = lab.run("mvm", {"n": 16})                         # one logged run
"""

import xbarlab.experiments.catalog  # noqa: F401 - registers the built-in step types
from xbarlab.runs.engine import SESSION_KIND
from xbarlab.runs.session import LabSession, close_session, experiment_class, open_session, resolve_station

__all__ = ["SESSION_KIND", "LabSession", "close_session", "experiment_class", "open_session", "resolve_station"]
