"""A calendar invitation is an event by the labeling guideline unless it is automated; the
corpus has no calendar part for the model to learn it from, so a rule says it."""

from __future__ import annotations

import numpy as np

from sluice.classifier.history import SenderHistory
from sluice.classifier.model import Classifier
from sluice.core.parse import parse

INVITE = (b"From: Anna Berg <anna@corp.example>\r\nTo: bob@corp.example\r\n"
          b"Subject: Quarterly numbers\r\nMessage-ID: <inv@corp.example>\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
          b"Content-Type: text/plain\r\n\r\nBob, can you send me the quarterly numbers?\r\n"
          b"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
          b"METHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:1@corp\r\nDTSTART:20261201T100000Z\r\n"
          b"SUMMARY:Numbers\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--b--\r\n")


def test_an_invitation_is_an_event_whatever_its_words(default_classifier: Classifier) -> None:
    mail = parse(INVITE)
    without = parse(INVITE.replace(b"method=REQUEST", b"method=PUBLISH")
                    .replace(b"METHOD:REQUEST", b"METHOD:PUBLISH"))
    assert default_classifier.classify(without).category != "event"  # the words say direct
    verdict = default_classifier.classify(mail, SenderHistory())
    assert verdict.category == "event"
    assert verdict.reasons[0] == "contains a meeting invitation"
    proba = default_classifier.predict_proba([default_classifier.row(mail)])[0]
    automated = default_classifier.classes.index("automated")
    assert verdict.confidence == round(1.0 - float(proba[automated]), 4)
    assert default_classifier.predict([default_classifier.row(mail)]) == ["event"]


def test_the_rule_leaves_automated_invitations_automated(default_classifier: Classifier) -> None:
    classes = default_classifier.classes
    proba = np.full(len(classes), 0.01)
    proba[classes.index("automated")] = 0.9
    assert classes[default_classifier.choose(proba, invitation=True)] == "automated"
    proba = np.full(len(classes), 0.01)
    proba[classes.index("direct")] = 0.9
    assert classes[default_classifier.choose(proba, invitation=True)] == "event"
    assert classes[default_classifier.choose(proba, invitation=False)] == "direct"
