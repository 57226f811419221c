"""The Qt lab GUI (``xbarlab gui``). Needs the ``gui`` extra: ``pip install "xbarlab[gui]"``.

The GUI holds no experiment logic: every action runs a registered experiment through a
logged :class:`~xbarlab.session.LabSession` on a worker thread and plots what it reports
and what it wrote to the log.
"""
