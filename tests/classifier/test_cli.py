"""`sluice classify`, `train` and `evaluate` from the command line, on real corpus mail."""

from __future__ import annotations

import json
import mailbox
from email import message_from_bytes
from pathlib import Path

import pytest

from sluice.classifier.features import to_row
from sluice.classifier.model import DEFAULT_MODEL
from sluice.cli import main
from sluice.core.parse import parse
from sluice.core.verdict import CATEGORIES
from tests.classifier.conftest import CORPUS, category_folders, labeled_sample


def test_classify_json_has_one_object_per_message(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(CORPUS / path) for path, _ in labeled_sample(1)]
    assert main(["classify", "--json", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(files)
    for given, line in zip(files, lines, strict=True):
        answer = json.loads(line)
        raw = Path(given).read_bytes()
        assert answer["file"] == (f"{given}#0" if raw.startswith(b"From ") else given)
        assert answer["message_id"] == parse(raw).message_id
        assert answer["category"] in CATEGORIES
        assert 0.0 < answer["confidence"] <= 1.0
        assert answer["reasons"] and all(isinstance(r, str) for r in answer["reasons"])


def test_classify_names_mbox_messages_by_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = mailbox.mbox(tmp_path / "box")
    for path, _ in labeled_sample(1)[:2]:
        box.add(message_from_bytes((CORPUS / path).read_bytes()))
    box.close()
    assert main(["classify", str(tmp_path / "box")]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [f"{tmp_path / 'box'}#0", f"{tmp_path / 'box'}#1"]


def test_classify_reads_each_sender_s_history_among_the_messages_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given out of Date order, the messages are printed in the order given and each is
    classified with what its sender sent before by Date."""
    from sluice.classifier.history import facts_in_date_order
    from sluice.classifier.model import Classifier

    files = []
    for day in (3, 1, 2):  # given latest first
        path = tmp_path / f"m{day}.eml"
        path.write_bytes(
            f"From: ann@corp.example\r\nTo: bob@corp.example\r\nSubject: Budget\r\n"
            f"Date: Tue, {day} May 2001 09:00:00 +0000\r\nMessage-ID: <m{day}@corp>\r\n\r\n"
            f"Bob, can you send me the numbers for day {day}?\r\n".encode())
        files.append(str(path))
    assert main(["classify", "--json", *files]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["file"] for a in answers] == files
    mails = [parse(Path(f).read_bytes()) for f in files]
    facts = facts_in_date_order(mails)
    assert [f["hist_known"] > 0 for f in facts] == [True, False, True]
    model = Classifier.load(DEFAULT_MODEL)
    expected = [model.verdict(model_row) for model_row in
                (to_row(mail, fact) for mail, fact in zip(mails, facts, strict=True))]
    assert [(a["category"], a["confidence"], tuple(a["reasons"])) for a in answers] == [
        (v.category, v.confidence, v.reasons) for v in expected]


def test_train_and_evaluate_on_category_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = category_folders(tmp_path / "data", per_category=12)
    out = tmp_path / "model.skops"
    assert main(["train", "--data", str(data), "--out", str(out), "--no-corrections"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["examples"] == 12 * len(CATEGORIES)
    assert main(["classify", "--model", str(out), str(data)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12 * len(CATEGORIES)
    assert main(["evaluate", "--data", str(data), "--folds", "3"]) == 0
    report = capsys.readouterr().out
    for section in ("== model", "== majority class", "== header rules", "confusion matrix"):
        assert section in report
    sections = [line for line in report.splitlines() if line.startswith("== ")]
    assert len(sections) == 3 and all("macro-F1" in line for line in sections)


def test_labels_csv_folder_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = labeled_sample(6, seed=1)
    lines = ["file,category"]
    for n, (path, category) in enumerate(sample):
        (tmp_path / f"m{n}.eml").write_bytes((CORPUS / path).read_bytes())
        lines.append(f"m{n}.eml,{category}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    assert main(["evaluate", "--data", str(tmp_path), "--model", str(DEFAULT_MODEL)]) == 0
    assert f"{len(sample)} messages" in capsys.readouterr().out


def test_train_takes_recipe_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = category_folders(tmp_path / "data", per_category=8)
    out = tmp_path / "model.json"
    assert main(["train", "--data", str(data), "--out", str(out), "--no-corrections",
                 "--recipe", "quoted_weight=0, C=10,tune_direct_rule=false"]) == 0
    document = json.loads(out.read_text())
    recipe = document["metadata"]["recipe"]
    assert (recipe["quoted_weight"], recipe["C"], recipe["tune_direct_rule"]) == (0.0, 10.0, False)
    assert [p["column"] for p in document["scorer"]["parts"]] == ["subject", "body", "headers"]
    for wrong in ("no_such_knob=1", "C=many", "tune_direct_rule=yes", "class_weight=none"):
        assert main(["train", "--data", str(data), "--out", str(out), "--no-corrections",
                     "--recipe", wrong]) == 2
        assert "--recipe" in capsys.readouterr().err
