"""Which pipeline hook a running gateway uses, chosen from the settings."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sluice.classifier.history import SenderHistory
from sluice.classifier.model import Classifier
from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail
from sluice.core.settings import Settings
from sluice.gateway.pipeline import PipelineHook, deliver_everything
from sluice.router.decide import decide
from sluice.router.rules import RuleSet
from sluice.router.rulesfile import load_rules

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def load_classifier(path: Path | None) -> Classifier:
    """Loading a model takes seconds; every gateway in a process shares one."""
    return Classifier.load(path) if path else Classifier.load_default()


def load_ruleset(settings: Settings) -> RuleSet:
    """The rules file's policy and user rules; without one, nothing is diverted."""
    return load_rules(settings.rules_file) if settings.rules_file else RuleSet()


def routing_hook(classifier: Classifier | None, rules: RuleSet,
                 history: SenderHistory | None = None) -> PipelineHook:
    """Classify (counting the message into the sender `history`), then let the rules
    decide per recipient; the verdict is recorded. Runs in the event loop, the history's
    one owner."""

    async def hook(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        verdict = classifier.classify(mail, history) if classifier is not None else None
        return decide(mail, verdict, rules)

    return hook


def default_hook(settings: Settings, rules: RuleSet | None = None,
                 history: SenderHistory | None = None) -> PipelineHook:
    """The hook for `sluice serve` and `sluice gateway`."""
    rules = rules if rules is not None else load_ruleset(settings)
    if not settings.classify and not rules.policy and not rules.users:
        return deliver_everything
    classifier = load_classifier(settings.classifier_model) if settings.classify else None
    return routing_hook(classifier, rules, history)
