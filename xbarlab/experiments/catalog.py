"""Import every module that registers built-in step types (campaigns, GUI, CLI use this)."""

from xbarlab import demo  # noqa: F401 - the demo is a logged experiment too
from xbarlab.experiments import measurements  # noqa: F401
