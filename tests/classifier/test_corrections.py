"""A stored correction is learned by the next `sluice train`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlmodel import Session

from sluice.classifier.features import to_row
from sluice.classifier.model import Classifier
from sluice.cli import main
from sluice.core.db import init_schema, make_engine
from sluice.core.parse import parse
from sluice.core.settings import load_settings
from sluice.core.tables import Correction
from tests.classifier.conftest import CORPUS, category_folders, labeled_sample


def test_training_learns_a_stored_correction(tmp_path: Path) -> None:
    data = category_folders(tmp_path / "data", per_category=15)
    trained_on = {p for p, _ in labeled_sample(15)}
    corrected_path = next(p for p, _ in labeled_sample(40, seed=3) if p not in trained_on)
    raw = (CORPUS / corrected_path).read_bytes()
    mail = parse(raw)

    before_path = tmp_path / "before.skops"
    assert main(["train", "--data", str(data), "--out", str(before_path),
                 "--no-corrections"]) == 0
    before = Classifier.load(before_path)
    proba = before.predict_proba([to_row(mail)])[0]
    # The person corrects it to the model's runner-up: a plausible, not absurd, correction.
    runner_up = before.classes[int(np.argsort(proba)[-2])]
    assert before.classify(mail).category != runner_up

    url = f"sqlite:///{tmp_path / 'sluice.db'}"
    engine = make_engine(load_settings(None, database_url=url, data_dir=tmp_path))
    init_schema(engine)
    with Session(engine) as session:
        session.add(Correction(message_id=mail.message_id, fingerprint="f1",
                               previous_category=before.classify(mail).category,
                               category=runner_up, corrected_by="ann@example.com", raw=raw))
        session.commit()
    engine.dispose()

    after_path = tmp_path / "after.skops"
    assert main(["train", "--data", str(data), "--out", str(after_path),
                 "--database-url", url]) == 0
    after = Classifier.load(after_path)
    assert after.classify(mail).category == runner_up
    assert after.bundle.metadata["corrections"] == 1
