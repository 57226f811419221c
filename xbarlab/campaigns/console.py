"""Console front end of campaigns: ``xbarlab run`` (progress bars, Ctrl-C, --resume, --dry-run)."""

from __future__ import annotations

import datetime as _dt
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from xbarlab.campaigns.runner import CampaignReport, CampaignRunner, campaign_from_log
from xbarlab.campaigns.spec import Campaign, StepInstance, load_campaign, step_types
from xbarlab.errors import ConfigError
from xbarlab.experiments.base import AbortToken, Progress
from xbarlab.experiments.cli_options import describe
from xbarlab.interrupts import absorb_sigint, sigint_deferred


def format_plan(campaign: Campaign) -> str:
    """The dry-run plan: every step with its operations and estimated instrument time."""
    lines = [f"campaign '{campaign.name}' on station '{campaign.station.name}' ({campaign.source})",
             f"{'#':>4}  {'step':<52} {'operations':>10} {'est. time':>12}"]
    total_ops, total_t = 0, 0.0
    for step, est in campaign.estimate():
        total_ops += est.operations
        total_t += est.instrument_time
        lines.append(f"{step.index + 1:>4}  {step.step_id:<52} {est.operations:>10} {_dur(est.instrument_time):>12}"
                     + (f"  {est.detail}" if est.detail else ""))
    lines.append(f"{len(campaign.steps)} steps, {total_ops} instrument operations, estimated instrument time "
                 f"{_dur(total_t)} (simulated clock model)")
    return "\n".join(lines)


def format_step_types() -> str:
    """``xbarlab run --list-steps``: every step type with its parameters, defaults, ranges and units."""

    lines: list[str] = []
    for kind, cls in step_types().items():
        lines.append(f"{kind}: {cls.title}".rstrip(": "))
        for spec in cls.params_spec:
            units = f" [{spec.units}]" if spec.units else ""
            choices = f" {{{', '.join(map(str, spec.choices))}}}" if spec.choices else ""
            lines.append(f"    {spec.name} ({spec.type.__name__}{units}){choices}: {describe(spec)}")
    return "\n".join(lines)


def _dur(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds >= 1e9:  # beyond what a timedelta shows (about 32 years)
        return f"{seconds:.3g} s"
    return str(_dt.timedelta(seconds=round(seconds)))


@contextmanager
def _ctrl_c_requests_abort(token: AbortToken) -> Iterator[None]:
    """First Ctrl-C: stop at the next safe point. Second: interrupt at once (outputs still go off)."""
    if threading_main() is False:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if token.requested:
            signal.signal(signal.SIGINT, absorb_sigint)  # a third Ctrl-C does not cut the shutdown short
            raise KeyboardInterrupt
        token.request()
        print("\nxbarlab: stopping at the next safe point (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def default_log_path(campaign_path: Path) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Path(f"{campaign_path.stem}-{stamp}.h5")


def run_campaign_cli(campaign: str | None, output: str | None, *, resume: str | None, dry_run: bool,
                     overwrite: bool, retries: int, quiet: bool = False) -> int:
    if resume is not None:
        if output is not None:
            raise ConfigError("--resume continues the given log; do not combine it with -o")
        log_path = Path(resume)
        plan = campaign_from_log(log_path)
        if campaign is not None:
            given = load_campaign(campaign)
            if given.text != plan.text:
                raise ConfigError(f"{campaign}: differs from the campaign stored in {log_path}; "
                                  "resume runs the stored campaign (omit the file)")
    else:
        if campaign is None:
            raise ConfigError("give a campaign file, or --resume LOG.h5")
        plan = load_campaign(campaign)
        log_path = Path(output) if output else default_log_path(Path(campaign))
    if retries < 0:
        raise ConfigError(f"--retries {retries}: expected 0 or more")
    if dry_run:
        print(format_plan(plan))
        return 0
    if resume is None:  # the log's problems before any progress bar is drawn
        if log_path.exists() and not overwrite:
            raise ConfigError(f"{log_path}: already exists; choose another file, resume it, or ask to overwrite it")
        if not log_path.parent.is_dir():
            raise ConfigError(f"{log_path}: folder {log_path.parent} does not exist")

    token = AbortToken()
    if quiet:  # no bar objects at all: nothing left for the garbage collector to close during a Ctrl-C
        runner = CampaignRunner(plan, log_path, resume=resume is not None, overwrite=overwrite, retries=retries,
                                abort=token)
        with _ctrl_c_requests_abort(token):
            report = runner.run()
    else:
        report = _run_with_bars(plan, log_path, resume is not None, overwrite, retries, token)
    print(format_report(report))
    return {"completed": 0, "interrupted": 130}.get(report.status, 1)


def _run_with_bars(plan: Campaign, log_path: Path, resume: bool, overwrite: bool, retries: int,
                   token: AbortToken) -> CampaignReport:
    """Run with a campaign bar and a step bar; both are closed (Ctrl-C held back) however the run ends."""
    overall = tqdm(total=len(plan.steps), desc="campaign", unit="step", position=0, leave=True)
    step_bar = tqdm(total=1, desc="step", position=1, leave=False)

    def on_step(k: int, total: int, step: StepInstance) -> None:
        overall.n = k
        overall.refresh()
        step_bar.reset(total=1)
        step_bar.set_description(step.step_id[:40])

    def on_progress(p: Progress) -> None:
        step_bar.total = max(p.total, 1)
        step_bar.n = min(p.done, step_bar.total)
        step_bar.set_postfix_str(p.message[:40], refresh=True)

    runner = CampaignRunner(plan, log_path, resume=resume, overwrite=overwrite, retries=retries,
                            abort=token, on_step=on_step, on_progress=on_progress)
    report: CampaignReport | None = None
    try:
        with _ctrl_c_requests_abort(token):
            report = runner.run()
    finally:
        with sigint_deferred():
            step_bar.close()
            if report is not None:
                overall.n = sum(1 for o in report.outcomes if o.status in ("completed", "skipped"))
            overall.close()
    return report


def format_report(report: CampaignReport) -> str:
    counts = report.counts()
    done = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [f"campaign {report.status}: {done}; log: {report.log_path}"]
    for o in report.outcomes:
        if o.status in ("failed", "interrupted"):
            lines.append(f"  {o.step.step_id}: {o.status}{(': ' + o.error) if o.error else ''}")
    if report.status != "completed":
        lines.append(f"resume with: xbarlab run --resume {report.log_path}")
    return "\n".join(lines)
