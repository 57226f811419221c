"""Import every module that registers built-in step types (campaigns, GUI, CLI use this)."""

from xbarlab.experiments import measurements  # noqa: F401
