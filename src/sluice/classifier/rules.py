"""A header-rules-only classifier: the baseline the model must clearly beat.

It looks only at the envelope and headers (addressing, list and automation headers, subject
prefixes, attachments, calendar parts), in the guideline's order, as a careful admin would
write Sieve rules. If the model does not beat this, it is not worth its weight.
"""

from __future__ import annotations

from sluice.classifier.features import header_features
from sluice.core.mail import Mail

#: Recipients from which a one-way message counts as sent to "many people".
MANY_RECIPIENTS = 10


def rule_category(mail: Mail) -> str:
    """The first rule that fits wins, in the labeling guideline's order."""
    f = header_features(mail, "", "", False)
    recipients = len(set(mail.to) | set(mail.cc))
    bulk_not_list = f["precedence_bulk"] and not f["list_post"]
    if f["auto_submitted"] or f["null_sender"] or f["system_sender"] or bulk_not_list:
        return "automated"
    if f["calendar"]:
        return "event"
    if f["list_id"] or f["list_post"]:
        return "discussion"
    if f["fwd_subject"] or f["n_attachments"]:
        return "material"
    if recipients >= MANY_RECIPIENTS and not f["re_subject"]:
        return "broadcast"
    if f["re_subject"] and recipients >= 2:
        return "discussion"
    return "direct"
