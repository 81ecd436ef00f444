"""Declarative base with a naming convention so Alembic names constraints predictably."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import UserDefinedType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every cim table; geometry columns are typed with the storage SRID by Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Box3D(UserDefinedType[str]):
    """PostGIS ``box3d``: an element's 3D bounding box, read back as ``BOX3D(x y z,x y z)``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "box3d"
