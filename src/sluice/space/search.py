"""Full-text search across posts, comments and attachment names, for visible posts only.

Newest match first (rows are added in order): FTS5 walks its matches by rowid backwards and
stops once a page of visible ones is found, so a common word costs no more than a rare one;
ranking every match (bm25) took hundreds of milliseconds for a word in most of 100,000 posts.

SQLite: the FTS5 table `space_search`; user input never reaches FTS5's query syntax as is:
it is cut into words, each quoted (a trailing `*` keeps prefix search, "…" keeps phrases).
PostgreSQL: the same table with a generated tsvector and a GIN index, queried with
websearch_to_tsquery (which accepts any input). Rows are written by the code that inserts
posts and comments, in the same transaction.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, column, func, literal_column, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from sluice.core.rawsql import Raw, insert_sql
from sluice.core.tables_space import SEARCH_TABLE, SpacePost
from sluice.space.access import visible_posts_clause
from sluice.space.viewer import Viewer

MAX_RESULTS = 50
MAX_OFFSET = 1000
MAX_QUERY_CHARS = 200
_START, _STOP = "\x02", "\x03"
_MARKERS = re.compile("[\x02\x03]")
_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")

_search = table(SEARCH_TABLE, column("rowid"), column("id"), column("post_id"),
                column("comment_id"), column("subject"), column("body"), column("sender"),
                column("names"), column("document"))


class QueryError(ValueError):
    """The user's query cannot be searched for; the message says why (a 400, never a 500)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    post_id: int
    comment_id: int | None
    channel: str
    subject: str
    sender: str
    posted_at: datetime
    #: Escaped text with the matches in <mark>: safe to put into a page as is.
    snippet_html: str


#: Plain SQL (core.rawsql): the outbox worker indexes every post it publishes.
_INDEX = insert_sql(SEARCH_TABLE, ("post_id", "comment_id", "subject", "body", "sender",
                                   "names"))


def _clean(value: str) -> str:
    return _MARKERS.sub(" ", value) if _START in value or _STOP in value else value


def post_search_row(post_id: int, *, subject: str, body: str, sender: str,
                    names: str) -> dict[str, Any]:
    """A post's search row, for `index_rows` (the outbox writes a batch's rows together)."""
    return {"post_id": post_id, "comment_id": 0, "subject": _clean(subject),
            "body": _clean(body), "sender": _clean(sender), "names": _clean(names)}


def index_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    Raw(conn).executemany(_INDEX, rows)


def index_post(conn: Connection, post_id: int, *, subject: str, body: str, sender: str,
               names: str) -> None:
    index_rows(conn, [post_search_row(post_id, subject=subject, body=body, sender=sender,
                                      names=names)])


def index_comment(conn: Connection, post_id: int, comment_id: int, *, body: str, author: str,
                  names: str = "") -> None:
    Raw(conn).execute(_INDEX, {
        "post_id": post_id, "comment_id": comment_id, "subject": "", "body": _clean(body),
        "sender": _clean(author), "names": _clean(names)})


def fts5_query(user_query: str) -> str:
    """The user's words as an FTS5 query that cannot be a syntax error: every word or phrase
    quoted, all of them required; `word*` searches by prefix."""
    if len(user_query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    terms: list[str] = []
    for phrase, word in _TERM.findall(user_query):
        words = _WORD.findall(phrase if phrase else word)
        if not words:
            continue
        quoted = '"' + " ".join(words) + '"'
        if word and word.endswith("*") and len(words) == 1:
            quoted += "*"
        terms.append(quoted)
    if not terms:
        raise QueryError("the query has no words to search for")
    return " ".join(terms)


def snippet_to_html(snippet: str) -> str:
    return html.escape(snippet).replace(_START, "<mark>").replace(_STOP, "</mark>")


def search(engine: Engine, viewer: Viewer, user_query: str, *, limit: int = 20,
           offset: int = 0, channel: str | None = None) -> list[SearchHit]:
    limit = max(1, min(limit, MAX_RESULTS))
    offset = max(0, min(offset, MAX_OFFSET))
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = _postgres_query(user_query)
        else:
            query = _sqlite_query(user_query)
        query = query.where(visible_posts_clause(viewer))
        if channel is not None:
            query = query.where(col(SpacePost.channel) == channel)
        try:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        except DBAPIError as exc:  # a query the engine refuses is the user's input, not a bug
            raise QueryError(f"the query could not be searched for: {exc.orig}") from exc
    return [SearchHit(post_id=row.post_id, comment_id=row.comment_id or None,
                      channel=row.channel, subject=row.subject, sender=row.sender,
                      posted_at=row.posted_at, snippet_html=snippet_to_html(row.snippet or ""))
            for row in rows]


def _columns() -> tuple[Any, ...]:
    return (_search.c.post_id, _search.c.comment_id, col(SpacePost.channel),
            col(SpacePost.subject), col(SpacePost.sender), col(SpacePost.posted_at))


def _sqlite_query(user_query: str) -> Any:
    match = fts5_query(user_query)
    snippet: Any = literal_column(
        f"snippet({SEARCH_TABLE}, -1, char(2), char(3), '…', 16)").label("snippet")
    return (select(*_columns(), snippet)
            .select_from(_search.join(SpacePost, col(SpacePost.id) == _search.c.post_id))
            .where(text(f"{SEARCH_TABLE} MATCH :match").bindparams(match=match))
            .order_by(_search.c.rowid.desc()))


def _postgres_query(user_query: str) -> Any:
    if len(user_query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if not _WORD.search(user_query):
        raise QueryError("the query has no words to search for")
    tsquery = func.websearch_to_tsquery("simple", user_query)
    document = _search.c.document
    headline = func.ts_headline(
        "simple",
        _search.c.subject + " " + _search.c.names + " " + _search.c.sender + " "
        + _search.c.body,
        tsquery, f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12",
    ).label("snippet")
    return (select(*_columns(), headline)
            .select_from(_search.join(SpacePost, col(SpacePost.id) == _search.c.post_id))
            .where(document.op("@@")(tsquery))
            .order_by(_search.c.id.desc()))
