"""Which pipeline hook a running gateway uses, chosen from the settings."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sluice.classifier.model import Classifier
from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail
from sluice.core.settings import Settings
from sluice.gateway.pipeline import PipelineHook, deliver_everything

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def load_classifier(path: Path | None) -> Classifier:
    """Loading a model takes seconds; every gateway in a process shares one."""
    return Classifier.load(path) if path else Classifier.load_default()


def classifying_hook(classifier: Classifier) -> PipelineHook:
    """Classify, then deliver to everyone: the verdict is recorded with the message."""

    async def hook(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        return RoutingDecision.deliver_all(recipients, classifier.classify(mail))

    return hook


def default_hook(settings: Settings) -> PipelineHook:
    """The hook for `sluice serve` and `sluice gateway`."""
    if not settings.classify:
        return deliver_everything
    return classifying_hook(load_classifier(settings.classifier_model))
