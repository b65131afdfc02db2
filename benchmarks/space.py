"""Shared-space latency with 100,000 posts: channel page and search, HTML and API.

Run on demand (this is not a test):

    .venv/bin/python benchmarks/space.py                 # 100,000 posts, 200 requests each
    .venv/bin/python benchmarks/space.py --posts 20000 --requests 100

A SQLite database in a temporary folder is filled directly (posts over several channels,
3-12 recipients each out of 60 people, search rows, some read marks), then the real app runs
under uvicorn on a loopback port and an httpx client measures, one request at a time:
`/healthz` (the baseline: the same server, no space query), the channel page
(`/space/{channel}` and `/api/channels/{channel}/posts`), the channel list with unread counts
(`/api/channels`) and search (`/search` and `/api/search`, words of high, middle and low
frequency). Target (issue 5): p95 < 150 ms for a channel page and for a search.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import Engine, text

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.core.tables_space import SEARCH_TABLE

TARGET_P95_MS = 150.0
CHANNELS = ["sales-updates", "offering", "pricing", "partners", "events", "feedback",
            "material", "all-hands"]
PEOPLE = [f"user{n:02d}@example.com" for n in range(60)]
VIEWER = PEOPLE[7]
PASSWORD = "benchmark password"
SEARCH_WORDS = ["price", "northwind", "quarterly review", "bundle*", "zebracorn"]
_WORDS = (
    "price", "list", "offer", "bundle", "discount", "quarter", "review", "partner", "northwind",
    "contoso", "margin", "seats", "support", "renewal", "forecast", "pipeline", "customer",
    "launch", "event", "webinar", "deck", "slides", "template", "contract", "volume", "region",
    "team", "update", "travel", "budget", "hiring", "roadmap", "feature", "release", "feedback",
    "request", "integration", "export", "report", "dashboard", "meeting", "agenda", "notes",
    "summary", "decision", "approval", "deadline", "schedule", "invoice", "payment", "license",
    "upgrade",
)


def _sentence(rng: random.Random, words: int) -> str:
    # Zipf-like: early words of the list are far more common than late ones.
    return " ".join(_WORDS[min(int(rng.paretovariate(1.1)) - 1, len(_WORDS) - 1)]
                    if rng.random() < 0.8 else rng.choice(_WORDS) for _ in range(words))


def fill(engine: Engine, posts: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    batch = 5000
    with engine.begin() as conn:
        for name in CHANNELS:
            conn.execute(text("INSERT INTO space_channel (name, title, description, open, "
                              "created_at) VALUES (:n, :n, '', 0, :t)"), {"n": name, "t": start})
    for first in range(0, posts, batch):
        post_rows, recipient_rows, search_rows, read_rows = [], [], [], []
        for n in range(first, min(first + batch, posts)):
            post_id = n + 1
            channel = CHANNELS[n % len(CHANNELS)]
            subject = _sentence(rng, 5).capitalize()
            body = ". ".join(_sentence(rng, 14) for _ in range(5)) + "."
            moment = start + timedelta(minutes=5 * n)
            sender = rng.choice(PEOPLE)
            post_rows.append({
                "id": post_id, "channel": channel,
                "fingerprint": hashlib.sha256(str(n).encode()).hexdigest(),
                "message_id": f"<bench-{n}@example.com>", "content_key": "",
                "subject": subject, "sender": sender, "sender_name": sender.split("@")[0],
                "category": "broadcast", "excerpt": body[:300], "raw_sha256": "",
                "attachments_json": "[]", "recipients": "", "thread_subject": subject.lower(),
                "in_reply_to": "", "thread_id": post_id, "body_html": f"<p>{body}</p>",
                "body_text": body, "comment_count": 0, "posted_at": moment,
                "last_activity_at": moment})
            for address in {sender, *rng.sample(PEOPLE, rng.randint(3, 12))}:
                recipient_rows.append({"post_id": post_id, "address": address,
                                       "role": "envelope"})
                if rng.random() < 0.5:
                    read_rows.append({"post_id": post_id, "user": address, "read_at": moment})
            search_rows.append({"post_id": post_id, "comment_id": 0, "subject": subject,
                                "body": body, "sender": sender, "names": ""})
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO space_post (id, channel, fingerprint, message_id, content_key, "
                "subject, sender, sender_name, category, excerpt, raw_sha256, "
                "attachments_json, recipients, thread_subject, in_reply_to, thread_id, "
                "body_html, body_text, comment_count, posted_at, last_activity_at) VALUES "
                "(:id, :channel, :fingerprint, :message_id, :content_key, :subject, :sender, "
                ":sender_name, :category, :excerpt, :raw_sha256, :attachments_json, "
                ":recipients, :thread_subject, :in_reply_to, :thread_id, :body_html, "
                ":body_text, :comment_count, :posted_at, :last_activity_at)"), post_rows)
            conn.execute(text("INSERT INTO space_post_recipient (post_id, address, role) "
                              "VALUES (:post_id, :address, :role)"), recipient_rows)
            conn.execute(text("INSERT INTO space_read_mark (post_id, user, read_at) "
                              "VALUES (:post_id, :user, :read_at)"), read_rows)
            conn.execute(text(f"INSERT INTO {SEARCH_TABLE} (post_id, comment_id, subject, "
                              "body, sender, names) VALUES (:post_id, :comment_id, :subject, "
                              ":body, :sender, :names)"), search_rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


class Server:
    def __init__(self, engine: Engine, port: int) -> None:
        config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(call: Callable[[int], httpx.Response], requests: int) -> list[float]:
    timings = []
    for n in range(requests):
        began = time.perf_counter()
        response = call(n)
        timings.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url}: HTTP {response.status_code}")
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def signed_in_client(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]*)"', form)
    if token is None:
        raise RuntimeError("no CSRF field on /login")
    response = client.post("/login", data={"email": VIEWER, "password": PASSWORD,
                                           "csrf_token": token.group(1)})
    if response.status_code not in (200, 303):
        raise RuntimeError(f"sign-in failed: HTTP {response.status_code}")
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="sluice-space-bench-"))
    engine = make_engine(load_settings(None, data_dir=folder / "data"))
    init_schema(engine)
    began = time.perf_counter()
    fill(engine, args.posts)
    with engine.connect() as conn:
        visible = conn.execute(text("SELECT count(*) FROM space_post_recipient "
                                    "WHERE address = :a"), {"a": VIEWER}).scalar()
    print(f"filled {args.posts:,} posts in {time.perf_counter() - began:.0f} s; "
          f"{VIEWER} may see {visible:,} of them")
    people.ensure_user(engine, VIEWER, password=PASSWORD)
    api_headers = {"Authorization": f"Bearer {people.issue_token(engine, VIEWER, 'bench')}"}
    server = Server(engine, free_port())
    base = f"http://127.0.0.1:{server.server.config.port}"
    try:
        api = httpx.Client(base_url=base, timeout=30, headers=api_headers)
        html = signed_in_client(base)
        channel = CHANNELS[0]
        cursor_page = api.get(f"/api/channels/{channel}/posts", params={"limit": 30}).json()
        deep = cursor_page["next_cursor"]
        cases: list[tuple[str, Callable[[int], httpx.Response]]] = [
            ("baseline /healthz", lambda n: api.get("/healthz")),
            ("channel page (HTML)", lambda n: html.get(f"/space/{CHANNELS[n % 8]}")),
            ("channel page (API)", lambda n: api.get(f"/api/channels/{CHANNELS[n % 8]}/posts")),
            ("channel page 2 (API)", lambda n: api.get(f"/api/channels/{channel}/posts",
                                                        params={"before": deep})),
            ("channel list + unread (API)", lambda n: api.get("/api/channels")),
            ("search (HTML)", lambda n: html.get(
                "/search", params={"q": SEARCH_WORDS[n % len(SEARCH_WORDS)]})),
            ("search (API)", lambda n: api.get(
                "/api/search", params={"q": SEARCH_WORDS[n % len(SEARCH_WORDS)]})),
        ]
        results: dict[str, list[float]] = {}
        for name, call in cases:
            measure(call, 10)  # warm the caches
            results[name] = measure(call, args.requests)
    finally:
        server.stop()
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    baseline = statistics.median(results["baseline /healthz"])
    print(f"\n{'request':30} {'p50 ms':>8} {'p95 ms':>8} {'p50/base':>9}  p95 < "
          f"{TARGET_P95_MS:.0f} ms")
    for name, timings in results.items():
        median, high = statistics.median(timings), p95(timings)
        verdict = "" if name.startswith("baseline") else (
            "yes" if high < TARGET_P95_MS else "NO")
        print(f"{name:30} {median:8.1f} {high:8.1f} {median / baseline:8.1f}x  {verdict}")
    targets = [n for n in results if n.startswith(("channel page", "search"))]
    met = all(p95(results[n]) < TARGET_P95_MS for n in targets)
    print(f"\ntarget p95 < {TARGET_P95_MS:.0f} ms for channel pages and search: "
          f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



