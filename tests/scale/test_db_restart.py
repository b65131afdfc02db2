"""PostgreSQL restarted under load: while nothing can be recorded the gateways answer 451
(never a 5xx, never a crash), everything recovers on its own once the server is back, and
no acknowledged message is lost or delivered twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.pg import PostgresServer, postgres, postgres_url  # noqa: F401  (fixtures)
from tests.scale.harness import (
    Mta,
    audit,
    expect_letter,
    make_letters,
    node_args,
    read_database,
    read_sink,
    rules_yaml,
    start_nodes,
    wait_until_published,
)
from tests.servers import SmtpSink

pytestmark = pytest.mark.slow

LETTERS = 700
DOWN_FOR = 6.0


def test_database_restart_under_load_defers_then_recovers_without_loss(
        tmp_path: Path, postgres: PostgresServer, postgres_url: str,  # noqa: F811
        clean_sink: SmtpSink) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_yaml())
    common = node_args(postgres_url, clean_sink.address, rules)
    (gw_a, gw_b), workers = start_nodes(tmp_path, common, workers=1)
    nodes = [gw_a, gw_b, *workers]
    letters = make_letters(LETTERS, "db")
    # Paced at about 40 messages a second, so the restart falls in the middle of the load.
    mta = Mta(lambda: [gw_a.port, gw_b.port], threads=6, pause=0.12)
    try:
        mta.send(letters)
        while mta.ledger.acked_count < LETTERS // 4:
            time.sleep(0.05)
        postgres.stop_server()
        down_at = mta.ledger.acked_count
        time.sleep(DOWN_FOR)
        acked_while_down = mta.ledger.acked_count - down_at
        deferred_while_down = sum(mta.ledger.deferred.values())
        crashed_while_down = [n.log.parent.name for n in nodes if not n.alive]
        postgres.start_server()
        mta.join()
        left = wait_until_published(postgres_url, 120)
        crashed = [n.log.parent.name for n in nodes if not n.alive]
    finally:
        postgres.start_server()  # if still down: the cluster serves the whole session
        mta.join(5)
        codes = [n.stop() for n in nodes]
    ledger = mta.ledger
    print(f"database down after {down_at} acknowledged: {acked_while_down} acknowledged "
          f"and {deferred_while_down} deferred while down; deferrals {dict(ledger.deferred)}")
    assert crashed_while_down == [] and crashed == []
    assert codes == [0, 0, 0]
    assert ledger.refused == {}  # never a 5xx
    assert set(ledger.deferred) == {"451"}  # the one temporary answer, and it was given
    assert ledger.gave_up == set()
    assert len(ledger.acked) == LETTERS  # recovered without intervention
    assert left == 0  # the worker recovered too

    published = read_database(postgres_url)
    books = audit([expect_letter(letter) for letter in letters], read_sink(clean_sink),
                  published, in_flight=set())
    # Mail the upstream had accepted when the record failed is answered 250 all the same
    # (a 451 would make the client send it again): its facts row is lost, not the mail.
    print(f"acknowledged without a facts row: {len(ledger.acked - published.recorded)}")
    assert books.missing == []
    assert books.twice == [] and books.twice_in_flight == []
    assert books.wrongly_delivered == [] and books.unknown == []
    assert books.fallbacks == 0
