"""Labeled mail for training and evaluation: a labels CSV, folders per category, corrections.

Accepted `--data` shapes:
- a CSV file with a path column (`path` or `file`, relative to the CSV's folder) and
  `category`; optional `second` names a second plausible category (counted right when scoring);
- a folder holding such a CSV (`labels.csv`, or the only `*.csv` in it);
- a folder with one sub-folder per category (any of `CATEGORIES`), messages inside.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.classifier.readers import read_folder
from sluice.core.errors import ConfigError
from sluice.core.tables import Correction
from sluice.core.verdict import CATEGORIES

_PATH_COLUMNS = ("path", "file")


@dataclass(frozen=True, slots=True)
class Example:
    """One labeled message. `second` is "" unless a second category was plausible."""

    name: str
    raw: bytes
    category: str
    second: str = ""
    source: str = "labels"  # "labels" | "correction"
    #: Where the label came from: the labels CSV or folder it was read from.
    origin: str = ""


def _check_category(category: str, where: str) -> str:
    category = category.strip().lower()
    if category not in CATEGORIES:
        known = ", ".join(CATEGORIES)
        raise ConfigError(f"{where}: unknown category {category!r} (known: {known})")
    return category


def load_csv(path: Path) -> list[Example]:
    base = path.parent
    examples: list[Example] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or ()]
        column = next((c for c in _PATH_COLUMNS if c in fields), None)
        if column is None or "category" not in fields:
            raise ConfigError(f"{path}: needs a 'file' (or 'path') column and a 'category' column")
        for line, record in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k}
            where = f"{path}:{line}"
            second = row.get("second", "")
            message = base / row[column]
            try:
                raw = message.read_bytes()
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {message}: {exc}") from exc
            examples.append(Example(
                name=row[column],
                raw=raw,
                category=_check_category(row["category"], where),
                second=_check_category(second, where) if second else "",
                origin=str(path),
            ))
    return examples


def _labels_csv_in(folder: Path) -> Path | None:
    if (folder / "labels.csv").is_file():
        return folder / "labels.csv"
    found = sorted(folder.glob("*.csv"))
    return found[0] if len(found) == 1 else None


def load_category_folders(folder: Path) -> list[Example]:
    examples: list[Example] = []
    for category in CATEGORIES:
        sub = folder / category
        if sub.is_dir():
            examples.extend(
                Example(name=s.name, raw=s.raw, category=category, origin=str(folder))
                for s in read_folder(sub, f"{folder.name}/{category}")
            )
    return examples


def load_examples(data: Path) -> list[Example]:
    """Every labeled message found at `data`; raises ConfigError when nothing usable is there."""
    if data.is_file():
        examples = load_csv(data)
    elif data.is_dir():
        labels = _labels_csv_in(data)
        examples = load_csv(labels) if labels else load_category_folders(data)
    else:
        raise ConfigError(f"{data}: no such file or folder")
    if not examples:
        raise ConfigError(f"{data}: no labeled messages found (see `sluice train --help`)")
    return examples


def load_corrections(engine: Engine) -> list[Example]:
    """Stored corrections, the newest per message winning (one person may change their mind)."""
    with Session(engine) as session:
        order = (col(Correction.created_at), col(Correction.id))
        rows = session.exec(select(Correction).order_by(*order)).all()
    latest: dict[str, Correction] = {}
    for row in rows:
        latest[row.fingerprint or row.message_id or f"correction-{row.id}"] = row
    return [
        Example(
            name=f"correction:{key}",
            raw=row.raw,
            category=_check_category(row.category, f"correction {row.id}"),
            source="correction",
            origin="corrections",
        )
        for key, row in latest.items()
    ]
