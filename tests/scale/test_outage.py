"""A webhook destination down for longer than the outbox deadline while mail keeps coming:
what it misses is delivered to the diverted recipients as mail (marked), nothing is lost,
nothing arrives twice, and the space destination carries on as if nothing happened."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)
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
from tests.servers import SmtpSink, free_port

pytestmark = pytest.mark.slow

LETTERS = 800
DEADLINE = 6.0
OUTAGE = 2.5 * DEADLINE


class Receiver:
    """A webhook receiver on a fixed port that can go down (closed socket: connection
    refused) and come back; counts the posts per message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = json.loads(body)
                receiver.posts[payload["message_id"].strip("<>")] += 1
                receiver.keys[self.headers["X-Sluice-Delivery"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def test_webhook_down_past_the_deadline_falls_back_once_and_the_space_is_unaffected(
        tmp_path: Path, postgres_url: str, clean_sink: SmtpSink) -> None:  # noqa: F811
    receiver = Receiver()
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_yaml(f"http://127.0.0.1:{receiver.port}/hook"))
    common = node_args(postgres_url, clean_sink.address, rules,
                       "--outbox-deadline", str(DEADLINE))
    (gw_a, gw_b), workers = start_nodes(tmp_path, common, workers=2)
    nodes = [gw_a, gw_b, *workers]
    letters = make_letters(LETTERS, "out", hook_share=0.4)
    # Paced at about 30 messages a second: the outage falls in the middle of the load.
    mta = Mta(lambda: [gw_a.port, gw_b.port], threads=4, pause=0.12)
    try:
        mta.send(letters)
        while mta.ledger.acked_count < LETTERS // 5:
            time.sleep(0.05)
        receiver.down()
        down_at = mta.ledger.acked_count
        time.sleep(OUTAGE)
        up_at = mta.ledger.acked_count
        receiver.up()
        mta.join()
        left = wait_until_published(postgres_url, 120)
        crashed = [n.log.parent.name for n in nodes if not n.alive]
    finally:
        mta.join(5)
        for node in nodes:
            node.stop()
        receiver.down()
    ledger = mta.ledger
    assert crashed == []
    assert left == 0
    assert ledger.refused == {} and ledger.gave_up == set()
    assert len(ledger.acked) == LETTERS
    assert down_at < up_at < LETTERS  # the outage happened under load

    published = read_database(postgres_url)
    books = audit([expect_letter(letter) for letter in letters], read_sink(clean_sink),
                  published, in_flight=set(), webhook=receiver.posts)
    hook_states = Counter(s for (_, dest), states in published.jobs.items() if dest == "hook"
                          for s in states)
    news_states = Counter(s for (_, dest), states in published.jobs.items() if dest == "news"
                          for s in states)
    print(f"outage from {down_at} to {up_at} acknowledged: hook jobs {dict(hook_states)}, "
          f"news jobs {dict(news_states)}")
    assert books.missing == [] and books.twice == [] and books.twice_in_flight == []
    assert books.wrongly_delivered == [] and books.unknown == []
    assert hook_states["fallback"] > 0  # the outage was felt …
    assert hook_states["done"] > 0  # … and posting resumed after it
    assert books.fallbacks == hook_states["fallback"]  # one copy per diverted recipient
    assert set(news_states) == {"done"}  # the space destination was not affected
    assert max(receiver.keys.values()) == 1  # no post delivered twice
