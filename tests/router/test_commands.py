"""`sluice rules check` and `sluice rules init` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.cli import main
from sluice.router.rulesfile import load_rules
from tests.router.helpers import ISSUE_EXAMPLE


def test_check_ok_prints_a_summary_and_audit_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(ISSUE_EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{ISSUE_EXAMPLE}: OK (2 policy rules, 2 users, 3 destinations)"
    assert out[1].startswith(f"warning: {ISSUE_EXAMPLE}:15: once audit rules are enforced")
    assert len(out) == 2


def test_check_prints_every_problem_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("internal_domains: [example.com]\n"
                   "policy:\n"
                   "  - {match: {catgory: broadcast}, action: deliver}\n"
                   "  - {match: {category: event}, action: divert, to: nowhere}\n")
    assert main(["rules", "check", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in out] == [f"{bad}:3", f"{bad}:4"]
    assert "unknown match key 'catgory'" in out[0]
    assert "unknown destination 'nowhere'" in out[1]


def test_init_writes_audit_starter_that_checks_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rules.yaml"
    assert main(["rules", "init", str(target), "--domain", "Acme.example",
                 "--domain", "acme.test"]) == 0
    rules = load_rules(target)
    assert rules.internal_domains == frozenset({"acme.example", "acme.test"})
    assert all(rule.mode == "audit" for rule in rules.policy)
    diverted = {str(r.match.category): rules.destinations[r.to] for r in rules.policy if r.posts}
    assert sorted(diverted) == ["broadcast", "event", "feedback", "material"]
    assert {d.kind for d in diverted.values()} == {"space"}
    assert len({d.name for d in diverted.values()}) == 4  # one channel per category
    kept = {r.match.category for r in rules.policy if r.action == "deliver"}
    assert kept == {"automated", "direct"}
    capsys.readouterr()
    assert main(["rules", "check", str(target)]) == 0
    assert capsys.readouterr().out == (
        f"{target}: OK (6 policy rules, 0 users, 4 destinations)\n")

    before = target.read_text()
    assert main(["rules", "init", str(target)]) == 1
    assert "exists; not overwritten" in capsys.readouterr().out
    assert target.read_text() == before


def test_init_refuses_a_bad_domain(tmp_path: Path) -> None:
    assert main(["rules", "init", str(tmp_path / "r.yaml"), "--domain", "not a domain"]) == 2
    assert not (tmp_path / "r.yaml").exists()
