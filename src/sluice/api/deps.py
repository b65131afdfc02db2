"""Typed FastAPI dependencies shared by every route module."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


EngineDep = Annotated[Engine, Depends(get_engine)]

#: Row ids fit PostgreSQL's INTEGER; a larger number in a path is refused with 422 instead
#: of reaching the database driver (SQLite raised OverflowError past 2**63: a 500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
