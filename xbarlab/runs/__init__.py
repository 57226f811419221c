"""Running steps: the step framework (:mod:`.step`, :mod:`.recorder`), the one run engine (:mod:`.engine`),
lab sessions (:mod:`.session`) and offline replay (:mod:`.replay`).

Layer: above the logbook and the instruments, below the science (experiments, calibration), which
declares its steps with :class:`~xbarlab.runs.step.Experiment` and :func:`~xbarlab.runs.step.register`.
"""
