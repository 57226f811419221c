"""Measurement campaigns: TOML files of steps, run resumably against a station."""

from xbarlab.campaigns.spec import Campaign, StepInstance, load_campaign, parse_campaign

__all__ = ["Campaign", "StepInstance", "load_campaign", "parse_campaign"]
