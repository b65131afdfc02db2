"""A sales and offering team's week of mail, generated reproducibly from a seed.

It holds the kinds of mail Sluice is for: updated material with attachments, cc-to-all
announcements, customer feedback sent to everyone who might care, meeting invitations,
reply-all threads, automated notifications, and the personal requests that must stay mail.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

DOMAIN = "example.com"
TEAM = {
    "anna.berg": "Anna Berg",        # head of sales
    "ben.okafor": "Ben Okafor",      # offering manager
    "carla.diaz": "Carla Diaz",      # account manager
    "david.chen": "David Chen",      # account manager
    "eva.novak": "Eva Novak",        # pre-sales engineer
    "farid.haddad": "Farid Haddad",  # pricing
    "greta.lund": "Greta Lund",      # marketing
    "hugo.martin": "Hugo Martin",    # customer success
}
ALL_LIST = f"sales-team@{DOMAIN}"
CUSTOMERS = ["kim@northwind.example", "lee@contoso.example", "maria@fabrikam.example"]
PRODUCTS = ["CloudSync", "DataVault", "EdgeFlow"]


@dataclass(frozen=True, slots=True)
class DemoMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    kind: str  # what the generator meant it to be (for the demo's summary, not for tests)


def address(login: str) -> str:
    return f"{login}@{DOMAIN}"


def _named(login: str) -> str:
    return f"{TEAM[login]} <{address(login)}>"


class _Builder:
    def __init__(self, seed: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.clock = start
        self.out: list[DemoMessage] = []

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=self.rng.randint(7, 95))
        return self.clock

    def mail(self, kind: str, sender: str, to: list[str], subject: str, body: str, *,
             cc: list[str] | None = None, reply_to: EmailMessage | None = None,
             attachments: list[tuple[str, str, bytes]] | None = None,
             calendar: str | None = None, headers: dict[str, str] | None = None,
             sender_display: str | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = sender_display or (_named(sender.split("@")[0])
                                         if sender.endswith(DOMAIN) else sender)
        msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(self.tick())
        msg["Message-ID"] = make_msgid(domain=DOMAIN)
        if reply_to is not None:
            parent_refs = str(reply_to.get("References", ""))
            msg["In-Reply-To"] = str(reply_to["Message-ID"])
            msg["References"] = (parent_refs + " " + str(reply_to["Message-ID"])).strip()
        for key, value in (headers or {}).items():
            msg[key] = value
        msg.set_content(body)
        for filename, ctype, payload in attachments or []:
            maintype, subtype = ctype.split("/")
            msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
        if calendar:
            msg.add_alternative(calendar, subtype="calendar", params={"method": "REQUEST"})
        # The team list is expanded before the gateway, as Postfix does with its aliases.
        expanded = [r for rcpt in to + (cc or [])
                    for r in ([address(login) for login in TEAM] if rcpt == ALL_LIST else [rcpt])]
        envelope = tuple(dict.fromkeys(expanded))
        self.out.append(DemoMessage(sender if "@" in sender else address(sender),
                                    envelope, msg.as_bytes(), kind))
        return msg


def _ics(uid: str, summary: str, start: datetime, organizer: str, attendees: list[str]) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Sluice demo//EN", "METHOD:REQUEST",
             "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{start.strftime(fmt)}",
             f"DTSTART:{start.strftime(fmt)}",
             f"DTEND:{(start + timedelta(hours=1)).strftime(fmt)}", f"SUMMARY:{summary}",
             f"ORGANIZER:mailto:{organizer}"]
    lines += [f"ATTENDEE;RSVP=TRUE:mailto:{a}" for a in attendees]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def team_mail(seed: int = 7, start: datetime | None = None) -> list[DemoMessage]:
    """About sixty messages of one team week, in time order."""
    b = _Builder(seed, start or datetime(2026, 11, 16, 7, 30, tzinfo=UTC))
    everyone = [address(login) for login in TEAM]
    rng = b.rng

    for week_day in range(5):
        product = PRODUCTS[week_day % len(PRODUCTS)]
        version = week_day + 3
        # Updated material, sent to the whole team with the new file attached.
        b.mail("material", "ben.okafor", [ALL_LIST],
               f"{product} pitch deck v{version} — latest version attached",
               f"Hi all,\n\nattached is the latest version of the {product} pitch deck "
               f"(v{version}). Please use this one from now on and delete older copies.\n\n"
               "Changes: updated pricing slide, new customer logos.\n\nBen",
               attachments=[(f"{product}_pitch_v{version}.pptx",
                             "application/vnd.openxmlformats-officedocument"
                             ".presentationml.presentation",
                             rng.randbytes(6000 + 500 * week_day))])
        b.mail("material", "farid.haddad", everyone,
               f"Updated price list {product} — week {47 + week_day // 5}",
               f"Team,\n\nplease find the updated price list for {product} attached. "
               "Discount bands changed for the mid-market tier.\n\nFarid",
               attachments=[(f"pricelist_{product}.xlsx",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                             rng.randbytes(3000))])
        # Cc-to-all announcement.
        b.mail("broadcast", "anna.berg", [ALL_LIST], f"FYI: {product} won at Northwind",
               f"Dear team,\n\njust so everyone knows: we signed Northwind for {product}, "
               "three-year term. Great work by Carla and Eva. No action needed.\n\nAnna",
               cc=everyone[1:])
        # Customer feedback forwarded to everyone who might care.
        customer = CUSTOMERS[week_day % len(CUSTOMERS)]
        b.mail("feedback", "hugo.martin", [ALL_LIST],
               f"Fwd: Customer feedback on {product} onboarding",
               f"FYI — feedback from {customer}:\n\n> The onboarding of {product} took us two "
               "weeks longer than planned. The admin console is confusing and the import "
               "wizard failed on our CSV files. Support was friendly and quick though.\n\n"
               "Hugo", cc=[address("ben.okafor")])
        # Meeting invitation with a calendar part.
        when = b.clock.replace(hour=14, minute=0) + timedelta(days=1)
        attendees = everyone
        b.mail("event", "anna.berg", attendees, f"Invitation: {product} pipeline review",
               f"Let's review the {product} pipeline together. Agenda: top deals, risks.\n",
               calendar=_ics(make_msgid(domain=DOMAIN).strip("<>"),
                             f"{product} pipeline review", when, address("anna.berg"),
                             attendees))
        # A reply-all thread that does not end.
        root = b.mail("discussion", "carla.diaz", [ALL_LIST],
                      f"Question on {product} bundle pricing",
                      "Do we allow the bundle discount together with the partner discount? "
                      "A customer asked today.")
        parent = root
        repliers = rng.sample(list(TEAM), 4)
        for login in repliers:
            parent = b.mail("discussion", login, [ALL_LIST],
                            f"Re: Question on {product} bundle pricing",
                            rng.choice([
                                "I think we never combined them before.",
                                "Last quarter we did it once for Contoso, with approval.",
                                "+1, would also like to know.",
                                "Farid should decide, it is a pricing question.",
                                "Can we take this to the pricing channel?",
                            ]) + "\n\n> " + "Do we allow the bundle discount together with the "
                            "partner discount?",
                            reply_to=parent, cc=[address("anna.berg")])
        # Automated notification.
        b.mail("automated", f"noreply@crm.{DOMAIN}", [address(rng.choice(list(TEAM)))],
               f"[CRM] Opportunity {product}-{1000 + week_day} moved to stage Negotiation",
               "This is an automated message from the CRM. Do not reply.",
               headers={"Auto-Submitted": "auto-generated", "Precedence": "bulk"},
               sender_display=f"CRM <noreply@crm.{DOMAIN}>")
        # Personal, actionable requests: these must stay mail.
        asker, helper = rng.sample(list(TEAM), 2)
        b.mail("direct", asker, [address(helper)], f"Can you review my {product} offer today?",
               f"Hi {TEAM[helper].split()[0]},\n\ncould you review my offer for {customer} "
               "before 4 pm? I need your OK on the discount.\n\nThanks!")
        b.mail("direct", customer, [address("carla.diaz")],
               f"Contract question for {product}",
               "Hello Carla, can you confirm the renewal date in our contract? Kind regards",
               sender_display=customer)
    return b.out
