"""Column shapes the models repeat, as ``Annotated`` types: ``id: Mapped[BigIntPK]``.

SQLAlchemy copies the ``mapped_column`` inside the annotation into each column, so every table
gets the same DDL it would with the arguments written out. Nullability still comes from the
annotation (``Mapped[X | None]``) unless the shape fixes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import MappedColumn, mapped_column

BigIntPK = Annotated[int, mapped_column(BigInteger, primary_key=True)]
"""A ``bigint`` primary key (a sequence fills it)."""

DatasetFK = Annotated[
    int, mapped_column(BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
]
"""The dataset a row was imported from; deleting the dataset deletes its rows."""

JsonAttrs = Annotated[
    dict[str, Any], mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
]
"""A JSONB object, ``{}`` unless given (source attributes, options, statistics...)."""

DefaultNow = Annotated[datetime, mapped_column(DateTime(timezone=True), server_default=func.now())]
"""A ``timestamptz`` the server sets to the time the row is written."""


def cascade_to(table: str) -> MappedColumn[Any]:
    """An indexed ``bigint`` reference to ``table.id``; deleting that row deletes this one."""
    return mapped_column(BigInteger, ForeignKey(f"{table}.id", ondelete="CASCADE"), index=True)
