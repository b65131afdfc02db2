"""Which pipeline hook a running gateway uses, chosen from the settings."""

from __future__ import annotations

from sluice.core.settings import Settings
from sluice.gateway.pipeline import PipelineHook, deliver_everything


def default_hook(settings: Settings) -> PipelineHook:
    """The hook for `sluice serve` and `sluice gateway`: relay everything (no rules yet)."""
    return deliver_everything
