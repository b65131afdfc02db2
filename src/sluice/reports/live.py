"""Live figures: how much mail the gateway kept out of inboxes, from its own records.

Every figure counts *recipient outcomes of internal recipients* (the decision rule is not
`external`), grouped by the day or week the message arrived (`message.received_at`, UTC):

- `inbox`: the message reached the person's inbox — status `delivered` (plain delivery, a
  `copy`, or a diversion decided in audit mode), plus diversions whose post failed for good
  and that were delivered as mail instead (the outbox job ended in `fallback`).
- `diverted`: the message left the inbox — status `diverted` (an enforced `divert` or
  `digest`) whose outbox job did not fall back (jobs still pending count as diverted).
- `would_divert`: delivered, but an audit-mode rule decided `divert` or `digest`: what
  enforcing the audited rules would take out of inboxes on top of `diverted`.
- `reduction_percent` = diverted / (inbox + diverted) × 100: the share of inbox arrivals
  that did not arrive. `would_reduction_percent` = would_divert / (inbox + diverted) × 100,
  so the two add up to the reduction with the audited rules enforced.

Rejected, deferred and duplicate outcomes (refused mail, retries) are in neither figure.
`messages` counts distinct messages with at least one counted recipient in the group.

The functions are pure reads (SQLAlchemy Core); date buckets are computed in SQL with the
dialect's own functions (SQLite and PostgreSQL). Figures about a group of people (a domain
or a team) are withheld below a minimum group size (`privacy_min_group`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    case,
    distinct,
    func,
    literal,
    or_,
    select,
)

from sluice.core.decision import AUDIT, DIGEST, DIVERT
from sluice.core.tables import MessageRecord, RecipientOutcome, as_utc
from sluice.core.tables_router import FALLBACK, OutboxJob
from sluice.core.tables_space import ReadMark, SpacePost

#: The rule name the router records for recipients outside the organisation.
EXTERNAL_RULE = "external"
#: Group labels for outcomes without a category or a destination.
UNCLASSIFIED = "(unclassified)"
INBOX_ONLY = "(none)"
NO_RULE = "(no rule)"
DAY, WEEK = "day", "week"
BUCKETS = (DAY, WEEK)
#: How many senders the top-broadcasters list names.
TOP_BROADCASTERS = 10

_message = MessageRecord.__table__  # type: ignore[attr-defined]
_outcome = RecipientOutcome.__table__  # type: ignore[attr-defined]
_job = OutboxJob.__table__  # type: ignore[attr-defined]
_post = SpacePost.__table__  # type: ignore[attr-defined]
_read = ReadMark.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts behind one row of the dashboard (see the module docstring)."""

    messages: int = 0
    inbox: int = 0
    diverted: int = 0
    fallback: int = 0
    would_divert: int = 0

    @property
    def arrivals(self) -> int:
        """Inbox arrivals without Sluice: what reached the inbox plus what was diverted."""
        return self.inbox + self.diverted

    @property
    def reduction_percent(self) -> float:
        return percent(self.diverted, self.arrivals)

    @property
    def would_reduction_percent(self) -> float:
        return percent(self.would_divert, self.arrivals)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "inbox": self.inbox, "diverted": self.diverted,
                "fallback": self.fallback, "would_divert": self.would_divert,
                "reduction_percent": self.reduction_percent,
                "would_reduction_percent": self.would_reduction_percent}

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.messages + other.messages, self.inbox + other.inbox,
                       self.diverted + other.diverted, self.fallback + other.fallback,
                       self.would_divert + other.would_divert)


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


@dataclass(frozen=True, slots=True)
class Period:
    """Messages received in [since, until), UTC."""

    since: datetime
    until: datetime

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None) -> Period:
        end = now or datetime.now(UTC)
        start = datetime.combine((end - timedelta(days=days - 1)).date(), datetime.min.time(),
                                 UTC)
        return cls(start, end)

    def bounds(self) -> tuple[datetime, datetime]:
        """Aware UTC: the tables' datetime type refuses naive values."""
        return as_utc(self.since), as_utc(self.until)



@dataclass(frozen=True, slots=True)
class SpaceReach:
    """Did diverted mail still reach people? Diverted deliveries whose message became a post
    in the built-in space, and how many of those the recipient opened (a read mark).

    Posts are found by the message's fingerprint; diversions that fell back to mail are
    left out. A recipient diverted elsewhere (a webhook) of a message that also became a
    space post counts too: they may read it there. A copy of the same content that arrived
    in a second SMTP transaction joins the first post and is not counted here."""

    diverted_to_space: int = 0
    read: int = 0

    @property
    def read_percent(self) -> float:
        return percent(self.read, self.diverted_to_space)

    def as_dict(self) -> dict[str, Any]:
        return {"diverted_to_space": self.diverted_to_space, "read": self.read,
                "read_percent": self.read_percent}


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """Figures of a group of people; `figures` is None when the group is too small to show."""

    name: str
    people: int
    figures: Figures | None


@dataclass(frozen=True, slots=True)
class LiveReport:
    """Everything the dashboard and `sluice report` show for one period and one viewer."""

    period: Period
    #: None: everyone's figures; an address: only that recipient's.
    recipient: str | None
    totals: Figures
    by_day: Mapping[str, Figures]
    by_week: Mapping[str, Figures]
    by_category: Mapping[str, Figures]
    by_destination: Mapping[str, Figures]
    by_rule: Mapping[str, Figures]
    by_user: Mapping[str, Figures]
    by_domain: tuple[GroupFigures, ...]
    top_broadcasters: Mapping[str, Figures]
    external_recipients: int
    privacy_min_group: int
    space: SpaceReach
    by_team: tuple[GroupFigures, ...] = field(default=())


# --- SQL building blocks ----------------------------------------------------------------


def bucket(dialect: str, column: Any, size: str) -> ColumnElement[Any]:
    """The day (YYYY-MM-DD) or the Monday of the ISO week a timestamp falls in, in SQL."""
    if size not in BUCKETS:
        raise ValueError(f"bucket size must be one of {BUCKETS}")
    if dialect == "postgresql":
        moment = func.date_trunc("week", column) if size == WEEK else column
        return func.to_char(moment, "YYYY-MM-DD")
    if dialect == "sqlite":
        if size == WEEK:  # the next Sunday (or the day itself), six days back: the Monday
            return func.date(column, "weekday 0", "-6 days")
        return func.date(column)
    raise ValueError(f"live figures support SQLite and PostgreSQL, not {dialect}")


def _counts(key: ColumnElement[Any]) -> Select[Any]:
    """SELECT key, messages, inbox, diverted, fallback, would_divert FROM the counted rows."""
    o, j = _outcome.c, _job.c
    diverted = o.status == "diverted"
    fell_back = and_(diverted, j.state == FALLBACK)
    delivered = o.status == "delivered"
    audit_leaves = and_(delivered, o.mode == AUDIT, o.action.in_((DIVERT, DIGEST)))

    def total(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    joined = _outcome.join(_message, _message.c.id == o.message_pk).outerjoin(
        _job, and_(diverted, j.fingerprint == _message.c.fingerprint,
                   j.destination == o.destination))
    return select(
        key.label("key"),
        func.count(distinct(o.message_pk)).label("messages"),
        total(or_(delivered, fell_back)).label("inbox"),
        total(and_(diverted, or_(j.state.is_(None), j.state != FALLBACK))).label("diverted"),
        total(fell_back).label("fallback"),
        total(audit_leaves).label("would_divert"),
    ).select_from(joined)


def _where(statement: Select[Any], period: Period, recipient: str | None) -> Select[Any]:
    since, until = period.bounds()
    statement = statement.where(_message.c.received_at >= since,
                                _message.c.received_at < until,
                                _outcome.c.rule != EXTERNAL_RULE)
    if recipient is not None:
        statement = statement.where(func.lower(_outcome.c.recipient) == recipient.lower())
    return statement


def _rows(conn: Connection, statement: Select[Any]) -> dict[str, Figures]:
    return {str(row.key): Figures(int(row.messages), int(row.inbox), int(row.diverted),
                                  int(row.fallback), int(row.would_divert))
            for row in conn.execute(statement)}


# --- the figures ------------------------------------------------------------------------


def figures_by(conn: Connection, period: Period, key: ColumnElement[Any],
               recipient: str | None = None) -> dict[str, Figures]:
    """Figures per value of `key`, an SQL expression over the message and outcome tables."""
    statement = _where(_counts(key), period, recipient).group_by(key)
    return _rows(conn, statement)


def totals(conn: Connection, period: Period, recipient: str | None = None) -> Figures:
    statement = _where(_counts(literal("all")), period, recipient)
    return _rows(conn, statement).get("all", Figures())


def by_time(conn: Connection, period: Period, size: str,
            recipient: str | None = None) -> dict[str, Figures]:
    """Figures per day or week, oldest first, with empty buckets filled in as zeros."""
    key = bucket(conn.dialect.name, _message.c.received_at, size)
    found = figures_by(conn, period, key, recipient)
    return {label: found.get(label, Figures()) for label in bucket_labels(period, size)}


def bucket_labels(period: Period, size: str) -> list[str]:
    """Every day (or Monday of a week) the period touches, as YYYY-MM-DD."""
    first: date = as_utc(period.since).date()
    last: date = (as_utc(period.until) - timedelta(microseconds=1)).date()
    step = timedelta(days=1 if size == DAY else 7)
    if size == WEEK:
        first -= timedelta(days=first.weekday())
    labels = []
    while first <= last:
        labels.append(first.isoformat())
        first += step
    return labels


def by_category(conn: Connection, period: Period,
                recipient: str | None = None) -> dict[str, Figures]:
    key = func.coalesce(_message.c.category, UNCLASSIFIED)
    return _sorted(figures_by(conn, period, key, recipient))


def by_destination(conn: Connection, period: Period,
                   recipient: str | None = None) -> dict[str, Figures]:
    """Per destination a decision named; `(none)` holds the recipients no rule sent anywhere."""
    key = case((_outcome.c.destination == "", INBOX_ONLY), else_=_outcome.c.destination)
    return _sorted(figures_by(conn, period, key, recipient))


def by_rule(conn: Connection, period: Period,
            recipient: str | None = None) -> dict[str, Figures]:
    """Per deciding rule; `would_divert` per rule is what enforcing each audit rule adds."""
    key = case((_outcome.c.rule == "", NO_RULE), else_=_outcome.c.rule)
    return _sorted(figures_by(conn, period, key, recipient))


def by_user(conn: Connection, period: Period,
            recipient: str | None = None) -> dict[str, Figures]:
    key = func.lower(_outcome.c.recipient)
    return dict(sorted(figures_by(conn, period, key, recipient).items()))


def top_broadcasters(conn: Connection, period: Period, recipient: str | None = None,
                     limit: int = TOP_BROADCASTERS) -> dict[str, Figures]:
    """Senders (From header, else envelope sender) whose mail reached the most inboxes.

    `arrivals` would rank what they sent; `inbox` ranks what still lands in inboxes, which
    is the load people feel now."""
    sender = func.lower(func.coalesce(func.nullif(_message.c.header_from, ""),
                                      _message.c.mail_from))
    statement = _where(_counts(sender), period, recipient).group_by(sender)
    inbox = statement.selected_columns.inbox
    statement = statement.order_by(inbox.desc(), sender).limit(limit)
    return _rows(conn, statement)


def external_recipients(conn: Connection, period: Period, recipient: str | None = None) -> int:
    """Outcomes of recipients outside the organisation: relayed, never counted above."""
    since, until = period.bounds()
    statement = select(func.count()).select_from(
        _outcome.join(_message, _message.c.id == _outcome.c.message_pk)).where(
        _message.c.received_at >= since, _message.c.received_at < until,
        _outcome.c.rule == EXTERNAL_RULE)
    if recipient is not None:
        statement = statement.where(func.lower(_outcome.c.recipient) == recipient.lower())
    return int(conn.execute(statement).scalar_one())


def space_reach(conn: Connection, period: Period, recipient: str | None = None) -> SpaceReach:
    o, j = _outcome.c, _job.c
    read_outcome = case((_read.c.id.is_not(None), o.id))
    joined = (_outcome.join(_message, _message.c.id == o.message_pk)
              .join(_job, and_(j.fingerprint == _message.c.fingerprint,
                               j.destination == o.destination))
              .join(_post, _post.c.fingerprint == _message.c.fingerprint)
              .outerjoin(_read, and_(_read.c.post_id == _post.c.id,
                                     _read.c.user == func.lower(o.recipient))))
    counted = select(func.count(distinct(o.id)), func.count(distinct(read_outcome)))
    # _where takes any select; this one's two columns make a different generic type.
    statement = _where(cast("Select[Any]", counted.select_from(joined)), period,
                       recipient).where(
        o.status == "diverted", j.state != FALLBACK)
    diverted, read = conn.execute(statement).one()
    return SpaceReach(int(diverted), int(read))


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def by_group(per_user: Mapping[str, Figures], group_of: Callable[[str], str | None],
             min_people: int) -> tuple[GroupFigures, ...]:
    """Per-user figures summed per group; groups under `min_people` people show no figures.

    People are the distinct recipients with counted outcomes in the period. A user whose
    group is None belongs to no group."""
    members: dict[str, list[Figures]] = {}
    for user, figures in per_user.items():
        group = group_of(user)
        if group:
            members.setdefault(group, []).append(figures)
    result = []
    for name, rows in sorted(members.items()):
        summed = sum(rows, Figures())
        # A message sent to several people of the group counts once per person there.
        result.append(GroupFigures(name, len(rows), summed if len(rows) >= min_people
                                   else None))
    return tuple(result)


def live_report(engine: Engine, period: Period, *, recipient: str | None = None,
                privacy_min_group: int = 5,
                teams: Mapping[str, str] | None = None) -> LiveReport:
    """All live figures for one viewer: `recipient` None for everyone (admins), else one
    person's own. Domain and team figures always cover everyone, above the privacy floor."""
    with engine.connect() as conn:
        everyone = by_user(conn, period)
        own = (everyone if recipient is None
               else {u: f for u, f in everyone.items() if u == recipient.lower()})
        team_of = {u.lower(): t for u, t in (teams or {}).items()}
        return LiveReport(
            period=period, recipient=recipient,
            totals=totals(conn, period, recipient),
            by_day=by_time(conn, period, DAY, recipient),
            by_week=by_time(conn, period, WEEK, recipient),
            by_category=by_category(conn, period, recipient),
            by_destination=by_destination(conn, period, recipient),
            by_rule=by_rule(conn, period, recipient),
            by_user=own,
            by_domain=by_group(everyone, domain_of, privacy_min_group),
            by_team=by_group(everyone, team_of.get, privacy_min_group) if team_of else (),
            top_broadcasters=top_broadcasters(conn, period, recipient),
            external_recipients=external_recipients(conn, period, recipient),
            privacy_min_group=privacy_min_group,
            space=space_reach(conn, period, recipient),
        )


def _sorted(rows: Mapping[str, Figures]) -> dict[str, Figures]:
    """Biggest first (by arrivals), then by name: the order a reader scans."""
    return dict(sorted(rows.items(), key=lambda kv: (-kv[1].arrivals, kv[0])))


def to_json(report: LiveReport) -> dict[str, Any]:
    """The report as plain JSON values (the dashboard's export and `sluice report`)."""

    def table(rows: Mapping[str, Figures]) -> dict[str, Any]:
        return {k: f.as_dict() for k, f in rows.items()}

    def groups(rows: Iterable[GroupFigures]) -> list[dict[str, Any]]:
        return [{"name": g.name, "people": g.people,
                 "figures": g.figures.as_dict() if g.figures else None} for g in rows]

    return {
        "since": report.period.since.isoformat(), "until": report.period.until.isoformat(),
        "recipient": report.recipient,
        "definitions": DEFINITIONS,
        "totals": report.totals.as_dict(),
        "by_day": table(report.by_day), "by_week": table(report.by_week),
        "by_category": table(report.by_category),
        "by_destination": table(report.by_destination),
        "by_rule": table(report.by_rule),
        "by_user": table(report.by_user),
        "by_domain": groups(report.by_domain), "by_team": groups(report.by_team),
        "privacy_min_group": report.privacy_min_group,
        "top_broadcasters": table(report.top_broadcasters),
        "external_recipients": report.external_recipients,
        "space": report.space.as_dict(),
    }


#: What each figure means, shipped with every export so a reader need not guess.
DEFINITIONS = {
    "inbox": "internal recipients the message reached as mail (delivered, copied, audit-mode "
             "decisions, and diversions delivered as mail after their destination failed)",
    "diverted": "internal recipients whose copy went to a destination instead of the inbox",
    "fallback": "diversions delivered as mail because the destination stayed down",
    "would_divert": "inbox deliveries that audit-mode rules would divert once enforced",
    "reduction_percent": "diverted / (inbox + diverted) x 100",
    "would_reduction_percent": "would_divert / (inbox + diverted) x 100",
    "messages": "distinct messages with at least one counted internal recipient (for a "
                "domain or team: summed per person)",
    "space": "diverted deliveries whose message is a post in the built-in space, and how "
             "many of them the recipient opened there",
}

CSV_COLUMNS = ("table", "key", "messages", "inbox", "diverted", "fallback", "would_divert",
               "reduction_percent", "would_reduction_percent")


def csv_rows(report: LiveReport) -> list[tuple[Any, ...]]:
    """One row per figure line, table by table (header first) for a CSV export."""
    rows: list[tuple[Any, ...]] = [CSV_COLUMNS]

    def add(table: str, key: str, f: Figures) -> None:
        rows.append((table, key, f.messages, f.inbox, f.diverted, f.fallback, f.would_divert,
                     f.reduction_percent, f.would_reduction_percent))

    add("totals", "all", report.totals)
    for name, rows_of in (("day", report.by_day), ("week", report.by_week),
                          ("category", report.by_category),
                          ("destination", report.by_destination), ("rule", report.by_rule),
                          ("user", report.by_user), ("sender", report.top_broadcasters)):
        for key, figures in rows_of.items():
            add(name, key, figures)
    for table_name, groups in (("domain", report.by_domain), ("team", report.by_team)):
        for group in groups:
            if group.figures is not None:
                add(table_name, group.name, group.figures)
    return rows
