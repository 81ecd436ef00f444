"""Settings refuse nonsense and normalise the database driver."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cim.config import CimSettings


def test_driver_is_normalised() -> None:
    settings = CimSettings(database_url="postgres://u@h:5/db")
    assert settings.database_url == "postgresql+psycopg://u@h:5/db"
    assert not settings.uses_embedded_database


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        CimSettings(database_url="mysql://u@h/db")
    with pytest.raises(ValidationError):
        CimSettings(srid=0)


def test_defaults() -> None:
    settings = CimSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.initial_srid == 4547
    assert settings.data_dir.is_absolute()
    assert settings.tiles_dir == settings.data_dir / "tiles"
