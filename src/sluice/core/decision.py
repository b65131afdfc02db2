"""What the pipeline decided for each recipient of one message."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.core.verdict import Verdict

DELIVER = "deliver"


@dataclass(frozen=True, slots=True)
class RecipientAction:
    """One recipient's fate and the rule that chose it ("" = the default: stays mail)."""

    recipient: str
    action: str = DELIVER
    rule: str = ""
    destination: str = ""

    @property
    def keeps_mail(self) -> bool:
        return self.action in (DELIVER, "copy")


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    verdict: Verdict | None
    actions: tuple[RecipientAction, ...]

    @classmethod
    def deliver_all(cls, recipients: tuple[str, ...], verdict: Verdict | None = None,
                    rule: str = "") -> RoutingDecision:
        return cls(verdict, tuple(RecipientAction(r, DELIVER, rule) for r in recipients))

    def for_recipient(self, recipient: str) -> RecipientAction:
        for action in self.actions:
            if action.recipient == recipient:
                return action
        return RecipientAction(recipient)
