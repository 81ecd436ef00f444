"""``format=csv|xlsx`` and ``lang=zh|en`` for the analyses that answer a list (tipg-style deps).

A route keeps its JSON answer (and its ``response_model``) as the default; with ``format=csv``
or ``format=xlsx`` the same answer - after the same sensitive-class hiding and audit - is sent as
a file to hand on (``Content-Disposition: attachment``). The tables are declared in
:mod:`cim.services.tables`; this module only reads the query and wraps the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query
from fastapi.responses import Response

from cim.services.results import Result
from cim.services.tables.catalog import tables_of
from cim.services.tables.language import DEFAULT_LANGUAGE, check_language
from cim.services.tables.spec import pick
from cim.services.tables.writers import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx

SVG_MEDIA_TYPE = "image/svg+xml"
AnswerT = TypeVar("AnswerT", bound=Result)

_FILES = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
}
TABLE_ALTERNATIVES: dict[int | str, dict[str, Any]] = {200: {"content": dict(_FILES)}}
"""OpenAPI ``responses`` of a list analysis: JSON (the model) or a CSV or xlsx file."""
CHART_ALTERNATIVES: dict[int | str, dict[str, Any]] = {
    200: {"content": {SVG_MEDIA_TYPE: {"schema": {"type": "string"}}, **_FILES}}
}
"""OpenAPI ``responses`` of a chart (section, profile): JSON, SVG, CSV or xlsx."""

LANG_DESCRIPTION = (
    "Language of the headers, sheet titles and value names of csv/xlsx (and of the SVG "
    "drawing's words): `zh` (简体中文, default) or `en`."
)
TABLE_DESCRIPTION = (
    "csv only, for an answer with several tables: which one (isolation: `valves` (default) or "
    "`segments`; trace: `segments` or `nodes`; profile: `segments` or `nodes`; excavation: "
    "`pipes` or `owners`; shutdown: `nodes` (default), `below_service`, `isolated`, `closed`; "
    "flood: `nodes` (default), `conduits`, `outfalls`). xlsx holds every table, one sheet each."
)


@dataclass(frozen=True)
class TableRequest:
    """How the caller wants the answer: ``json``, ``csv``, ``xlsx`` (or ``svg`` for charts),
    in which language, and which table for a CSV."""

    format: str
    lang: str
    table: str | None


def table_query(
    format: Literal["json", "csv", "xlsx"] = Query(
        "json", description="json (default), csv (UTF-8 with BOM) or xlsx."
    ),
    lang: str = Query(DEFAULT_LANGUAGE, max_length=16, description=LANG_DESCRIPTION),
    table: str | None = Query(None, max_length=64, description=TABLE_DESCRIPTION),
) -> TableRequest:
    """The ``format``/``lang``/``table`` query of a list analysis (400 for an unknown lang)."""
    return TableRequest(format, check_language(lang), table)


def chart_query(
    format: Literal["json", "svg", "csv", "xlsx"] = Query(
        "json", description="json (default), svg (the drawing), csv or xlsx."
    ),
    lang: str = Query(DEFAULT_LANGUAGE, max_length=16, description=LANG_DESCRIPTION),
    table: str | None = Query(None, max_length=64, description=TABLE_DESCRIPTION),
) -> TableRequest:
    """The ``format``/``lang``/``table`` query of a chart (section, profile)."""
    return TableRequest(format, check_language(lang), table)


TableDep = Annotated[TableRequest, Depends(table_query)]
ChartDep = Annotated[TableRequest, Depends(chart_query)]


def answer_as(wanted: TableRequest, answer: AnswerT, filename: str) -> AnswerT | Response:
    """``answer`` itself for JSON, else its tables as ``filename.csv`` / ``filename.xlsx``.

    Call it after the route has audited the answer: the file shows what the JSON would."""
    if wanted.format == "csv":
        body = to_csv(pick(tables_of(answer), wanted.table), wanted.lang)
        return _attachment(body, CSV_MEDIA_TYPE, f"{filename}.csv")
    if wanted.format == "xlsx":
        return _attachment(
            to_xlsx(tables_of(answer), wanted.lang), XLSX_MEDIA_TYPE, f"{filename}.xlsx"
        )
    return answer


def _attachment(body: bytes, media_type: str, filename: str) -> Response:
    """A download: browsers save it under ``filename`` instead of showing it."""
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
