"""Import every module that registers built-in step types (campaigns, GUI, CLI use this)."""

import xbarlab.calibration.steps  # noqa: F401 - calibration step types (read_calibration, write_verify, ...)
import xbarlab.experiments.closed_loop  # noqa: F401 - "closed_loop_solve"
import xbarlab.experiments.drift_inference  # noqa: F401 - "drift_inference"
import xbarlab.experiments.eqprop  # noqa: F401 - "equilibrium_train"
import xbarlab.experiments.linear_solve  # noqa: F401 - "linear_solve"
import xbarlab.experiments.measurements  # noqa: F401 - "iv_sweep", "array_read", "pulse_response"
import xbarlab.experiments.mvm  # noqa: F401 - "mvm"
import xbarlab.experiments.one_step  # noqa: F401 - "one_step"
import xbarlab.experiments.training  # noqa: F401 - "train"
from xbarlab import demo  # noqa: F401 - the demo is a logged experiment too

#: modules with an ``add_cli(subparsers)`` hook for an ``xbarlab`` command: mvm, solve, train, drift, onestep
CLI_MODULES = (
    xbarlab.experiments.mvm,
    xbarlab.experiments.linear_solve,
    xbarlab.experiments.training,
    xbarlab.experiments.drift_inference,
    xbarlab.experiments.one_step,
)
