"""What the pipeline decided for each recipient of one message."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.core.verdict import Verdict

DELIVER = "deliver"
DIVERT = "divert"
DIGEST = "digest"
COPY = "copy"
ACTIONS = (DELIVER, DIVERT, DIGEST, COPY)

ENFORCE = "enforce"
AUDIT = "audit"
MODES = (ENFORCE, AUDIT)


@dataclass(frozen=True, slots=True)
class RecipientAction:
    """One recipient's fate and the rule that chose it ("" = the default: stays mail).

    In `audit` mode the action is recorded exactly as decided, but the recipient still gets
    the mail and nothing is posted: the figures show what enforcing would change.
    """

    recipient: str
    action: str = DELIVER
    rule: str = ""
    destination: str = ""
    mode: str = ENFORCE

    @property
    def keeps_mail(self) -> bool:
        return self.action in (DELIVER, COPY) or self.mode == AUDIT

    @property
    def posts(self) -> bool:
        """Whether this decision puts the message in its destination."""
        return self.action in (DIVERT, DIGEST, COPY) and self.mode == ENFORCE


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    verdict: Verdict | None
    actions: tuple[RecipientAction, ...]
    #: recipient → action; the gateway asks per recipient, up to thousands per message.
    _by_recipient: dict[str, RecipientAction] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, RecipientAction] = {}
        for action in self.actions:
            index.setdefault(action.recipient, action)  # the first action for a recipient wins
        object.__setattr__(self, "_by_recipient", index)

    @classmethod
    def deliver_all(cls, recipients: tuple[str, ...], verdict: Verdict | None = None,
                    rule: str = "") -> RoutingDecision:
        return cls(verdict, tuple(RecipientAction(r, DELIVER, rule) for r in recipients))

    def for_recipient(self, recipient: str) -> RecipientAction:
        return self._by_recipient.get(recipient) or RecipientAction(recipient)
