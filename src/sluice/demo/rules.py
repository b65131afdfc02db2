"""The demo team's rules: what a sales and offering team would switch on first."""

from __future__ import annotations

from pathlib import Path

DEMO_RULES = """\
# Written by `sluice demo`. The team moved updates, material, feedback and meetings to
# shared channels; direct requests and system notifications stay mail.
internal_domains: [example.com]
destinations:
  offering-updates: {kind: space, channel: offering-updates, notify_sender: true}
  material: {kind: space, channel: material}
  customer-feedback: {kind: space, channel: customer-feedback}
  team-calendar: {kind: space, channel: team-calendar}
policy:
  - {name: broadcasts, match: {category: broadcast, min_confidence: 0.5}, action: divert,
     to: offering-updates}
  - {name: material, match: {category: material, min_confidence: 0.5}, action: divert,
     to: material}
  - {name: feedback, match: {category: feedback, min_confidence: 0.5}, action: divert,
     to: customer-feedback}
  - {name: meetings, match: {category: event, min_confidence: 0.5}, action: divert,
     to: team-calendar}
users:
  anna.berg@example.com:
    - {name: anna-digest, match: {category: material}, action: digest, to: material}
  ben.okafor@example.com:
    - {name: ben-keeps-feedback, match: {category: feedback}, action: copy,
       to: customer-feedback}
"""


def write_demo_rules(data_dir: Path) -> Path:
    """The rules file the demo runs with (written once; edit it and run the demo again)."""
    path = data_dir / "demo-rules.yaml"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(DEMO_RULES)
    return path
