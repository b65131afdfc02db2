"""The rules a new installation starts with: the policy in audit mode, so nothing moves until
someone has looked at the figures and switched an entry to `enforce`."""

from __future__ import annotations

from collections.abc import Sequence

STARTER_TEMPLATE = """\
# Sluice rules (docs/rules.md). Check every change with: sluice rules check FILE
#
# Every policy entry starts in `audit` mode: Sluice records what it would do and the mail
# is delivered as before. Once the figures look right, change `mode: audit` to
# `mode: enforce` one entry at a time.

internal_domains: [{domains}]

destinations:
  broadcasts: {{kind: space, channel: broadcasts}}
  materials: {{kind: space, channel: materials}}
  feedback: {{kind: space, channel: feedback}}
  events: {{kind: space, channel: events}}

policy:
  - name: keep-automated
    description: notifications and alerts stay mail; people act on them
    match: {{category: automated}}
    action: deliver
    mode: audit
  - name: keep-direct
    description: mail written to you stays mail
    match: {{category: direct}}
    action: deliver
    mode: audit
  - name: broadcasts-to-space
    description: announcements to many people are read in the shared space
    match: {{category: broadcast, min_confidence: 0.7}}
    action: divert
    to: broadcasts
    mode: audit
  - name: materials-to-space
    description: documents and price lists shared for reference
    match: {{category: material, min_confidence: 0.7}}
    action: divert
    to: materials
    mode: audit
  - name: feedback-to-space
    description: surveys and requests for feedback
    match: {{category: feedback, min_confidence: 0.7}}
    action: divert
    to: feedback
    mode: audit
  - name: events-to-space
    description: invitations to events that are not meetings with you
    match: {{category: event, min_confidence: 0.7}}
    action: divert
    to: events
    mode: audit

# Each user's own rules come before the policy; the first rule that matches decides.
users: {{}}
#  alice@{first}:
#    - {{match: {{subject: "^\\\\[FYI\\\\]"}}, action: digest, to: broadcasts}}
"""


def starter_rules(domains: Sequence[str] = ("example.com",)) -> str:
    """The starter rules file for an organisation owning `domains`."""
    return STARTER_TEMPLATE.format(domains=", ".join(domains), first=domains[0])
