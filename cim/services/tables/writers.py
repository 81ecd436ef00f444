"""CSV and xlsx files of analysis tables, with headers and value names in one language.

Both writers take the rows as the answer holds them and only name things: headers from the
language file, values through a column's vocabulary (是/否, 挖断...). Numbers stay numbers in
xlsx; codes stay codes (a ``utility_name`` column beside them gives the CJJ 61 name).

Imported attributes (codes, owners, messages) are not trusted: a text cell that starts like a
formula (``=``, ``+``, ``-``, ``@``) is written so that Excel shows it instead of running it
(OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from cim.services.tables.language import Cell, header, sheet_title, value_name
from cim.services.tables.spec import Table

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def localized_rows(table: Table, lang: str) -> list[list[Cell]]:
    """The header row then the rows, with each vocabulary column's values named in ``lang``."""
    named = [(i, c.vocabulary) for i, c in enumerate(table.columns) if c.vocabulary]
    out: list[list[Cell]] = [[header(lang, key) for key in table.keys]]
    for row in table.rows:
        cells = list(row)
        for index, vocabulary in named:
            cells[index] = value_name(lang, vocabulary, cells[index])
        out.append(cells)
    return out


def to_csv(table: Table, lang: str) -> bytes:
    """One table as CSV: UTF-8 *with* a byte-order mark, comma-separated, CRLF (RFC 4180).

    Why the BOM: Excel - what these departments open a CSV with - reads a CSV without one in the
    Windows code page (GBK on a Chinese system) and shows UTF-8 Chinese as mojibake; the BOM
    tells it the file is UTF-8. LibreOffice, WPS and ``csv``/pandas with ``utf-8-sig`` read it too.
    Empty cells are ``None`` in the answer; booleans are named (是/否, yes/no).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for cells in localized_rows(table, lang):
        writer.writerow([_csv_cell(v) for v in cells])
    return (BOM + buffer.getvalue()).encode("utf-8")


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    return str(value)


def to_xlsx(tables: Sequence[Table], lang: str) -> bytes:
    """A workbook with one sheet per table (titles in ``lang``), a bold header row, numbers as
    numbers. Written in openpyxl's write-only mode: rows stream out, so 10,000 pipes cost
    little memory."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    used: set[str] = set()
    for table in tables:
        sheet = workbook.create_sheet(title=_unique(sheet_title(lang, table.sheet), used))
        rows = localized_rows(table, lang)
        for index, title in enumerate(rows[0]):
            sheet.column_dimensions[_column_letter(index)].width = max(10, len(str(title)) * 2)
        sheet.freeze_panes = "A2"
        heading = []
        for title in rows[0]:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = bold
            heading.append(cell)
        sheet.append(heading)
        for cells in rows[1:]:
            sheet.append([_xlsx_cell(sheet, v) for v in cells])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Cell) -> Cell | WriteOnlyCell:
    """The value itself, except text starting with ``=``: openpyxl would store a formula, so it
    goes in as a string cell."""
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value


def _column_letter(index: int) -> str:
    return str(get_column_letter(index + 1))


def _unique(title: str, used: set[str]) -> str:
    """``title``, numbered if an earlier sheet took it (sheet titles must differ)."""
    candidate, number = title, 2
    while candidate in used:
        suffix = f" {number}"
        candidate, number = title[: 31 - len(suffix)] + suffix, number + 1
    used.add(candidate)
    return candidate
