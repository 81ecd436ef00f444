"""The viewer's languages: string tables that agree, every key the code uses exists, and in a real
Chromium the zh-CN page shows Chinese only (checked against the English table), the en page
English, and the language switch is remembered across a reload."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import text

from cim.crs import transformer
from tests.viewer import harness
from tests.viewer.conftest import DEMO_SRID, DemoCity, ViewerPage

VIEWER = Path(__file__).resolve().parents[2] / "api" / "static" / "viewer"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOCALES = ("zh-CN", "en")
SCRIPTS = tuple(sorted(path.name for path in VIEWER.glob("*.js")))
"""Every script of the viewer: a new tool's strings are checked without listing it here."""


def table(locale: str) -> dict[str, str]:
    tables: dict[str, str] = json.loads((VIEWER / "i18n" / f"{locale}.json").read_text("utf-8"))
    return tables


def test_string_tables_have_the_same_keys_and_placeholders() -> None:
    zh, en = table("zh-CN"), table("en")
    assert sorted(zh) == sorted(en)
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
        assert zh[key].strip() and en[key].strip(), key


def test_every_key_the_viewer_uses_is_in_the_tables() -> None:
    """Literal keys in the scripts, keys built from a prefix and a listed name, and the
    ``data-i18n*`` attributes of index.html."""
    keys = set(table("en"))
    prefixes = {key.split(".")[0] for key in keys}
    used: set[str] = set()
    built: set[str] = set()
    for name in SCRIPTS:
        source = (VIEWER / name).read_text("utf-8")
        for literal in re.findall(r"[\"'`]([a-z][A-Za-z]*(?:\.[A-Za-z0-9_-]+)+)[\"'`]", source):
            if literal.split(".")[0] in prefixes:
                used.add(literal)
        # ["a", "b"].map((c) => `prefix.${c}`)
        mapped = r"\[([^\]]*)\]\.map\(\(c\) => `([a-z.]+)\$\{c\}`\)"
        for items, prefix in re.findall(mapped, source):
            built |= {prefix + item for item in re.findall(r"\"(\w+)\"", items)}
        for prefix in re.findall(r"`([a-z][A-Za-z]*(?:\.[A-Za-z]+)*\.)\$\{", source):
            if prefix.split(".")[0] not in prefixes:
                continue  # a file name (cim.${format}), not a string-table key
            assert any(key.startswith(prefix) for key in keys), f"{name}: no key {prefix}*"
    shelter = (VIEWER / "shelter-tools.js").read_text("utf-8")
    levels = re.search(r"const LEVELS = \[([^\]]*)\]", shelter)
    assert levels
    built |= {f"shelter.level.{level}" for level in re.findall(r"\"(\w+)\"", levels.group(1))}
    excavation = (VIEWER / "excavation-tool.js").read_text("utf-8")
    colours = re.search(r"const EXCAVATION_COLOURS = \{([^}]*)\}", excavation)
    assert colours
    for status in re.findall(r"(\w+):", colours.group(1)):
        built |= {f"excavation.status.{status}", f"excavation.legend.{status}"}
    html = (VIEWER / "index.html").read_text("utf-8")
    used |= set(re.findall(r"data-i18n(?:-[a-z-]+)?=\"([^\"]+)\"", html))
    assert len(used) > 100  # the grep found the keys (not an empty pattern)
    assert (used | built) - keys == set()


def english_only() -> set[str]:
    """English texts that a Chinese page must not show (those equal in both are names/units)."""
    return set(table("en").values()) - set(table("zh-CN").values())


VISIBLE_TEXTS_JS = """() => {
    // every text a user sees in the layer panel: text nodes of visible elements, placeholders,
    // titles, and the options of the selects; data (dataset names) is left out
    const root = document.getElementById('panel');
    const shown = (el) => el.checkVisibility ? el.checkVisibility() : el.getClientRects().length;
    const texts = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode;
        const text = node.textContent.trim();
        const el = node.parentElement;
        if (!text || !shown(el) || el.closest('#datasets .name')) continue;
        texts.push(text);
    }
    for (const el of root.querySelectorAll('[placeholder], [title], [aria-label]')) {
        if (el.closest('#datasets .name')) continue;
        for (const name of ['placeholder', 'title', 'aria-label']) {
            if (el.getAttribute(name)) texts.push(el.getAttribute(name).trim());
        }
    }
    for (const option of root.querySelectorAll('option')) texts.push(option.textContent.trim());
    return texts;
}"""


def open_page(browser: Any, demo_city: DemoCity, locale: str) -> tuple[Any, harness.PageWatch]:
    page, watch = harness.open_viewer(browser, demo_city.base, locale=locale)
    assert page.evaluate("() => cim.errors") == []
    return page, watch


def text_of(page: Any, selector: str) -> str:
    text: str = page.evaluate(
        "(selector) => document.querySelector(selector).textContent", selector
    )
    return text.strip()


def panel_texts(page: Any) -> list[str]:
    texts: list[str] = page.evaluate(VISIBLE_TEXTS_JS)
    return texts


def assert_chinese_only(page: Any) -> list[str]:
    texts = panel_texts(page)
    assert texts
    keys = set(table("en"))
    english = english_only()
    assert [text for text in texts if text in english] == []
    assert [text for text in texts if text in keys] == []  # no untranslated key shown
    return texts


def test_chinese_fonts_are_installed() -> None:
    """The screenshots render Chinese only with a CJK font (scripts/bootstrap installs one)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        pytest.skip("no fontconfig on this machine")
    fonts = subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True, check=True).stdout
    assert fonts.strip(), "no Chinese font: apt-get install fonts-noto-cjk (scripts/bootstrap)"


def test_i18n_tables_are_served_like_the_viewer_files(demo_city: DemoCity) -> None:
    for locale in LOCALES:
        with urllib.request.urlopen(f"{demo_city.base}/viewer/i18n/{locale}.json") as answer:
            assert answer.headers["Cache-Control"] == "no-cache"
            assert "json" in answer.headers["Content-Type"]
            assert json.loads(answer.read().decode("utf-8")) == table(locale)


@pytest.fixture(scope="module")
def chinese_page(browser: Any, demo_city: DemoCity) -> Iterator[tuple[Any, harness.PageWatch]]:
    """The viewer in a browser whose language is zh-CN (its own context and localStorage)."""
    page, watch = open_page(browser, demo_city, "zh-CN")
    yield page, watch
    page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_chinese_page_shows_no_english_ui_text(
    chinese_page: tuple[Any, harness.PageWatch],
) -> None:
    """zh-CN browser: Chinese headings, CJJ 61 names in Chinese, an analysis form in Chinese,
    known property keys translated. Screenshots (look at them): test-artifacts/viewer-zh-CN.png
    (header, layers, legend) and viewer-zh-CN-tools.png (the excavation form, a pipe's keys)."""
    page, watch = chinese_page
    zh = table("zh-CN")
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"
    headings = page.evaluate(
        "() => [...document.querySelectorAll('#panel h2')].filter(h => h.checkVisibility())"
        ".map(h => h.textContent.trim())"
    )
    assert zh["panel.layers"] in headings and zh["panel.view"] in headings
    legend = page.evaluate("() => document.getElementById('legend').textContent")
    if page.evaluate("() => Boolean(cim.tilesets.pipes)"):
        for name in ("给水", "排水", "燃气"):
            assert name in legend
    assert_chinese_only(page)
    if page.evaluate("() => Boolean(document.getElementById('tool-excavation'))"):
        page.click("#tool-excavation")  # its form: depth, margin, finish; and its hint
        assert text_of(page, "#tool-hint") == zh["excavation.hint"]
        texts = assert_chinese_only(page)
        assert zh["excavation.depth"] in texts and zh["excavation.finish"] in texts
    # a picked pipe's properties: known keys from the table, an unknown key as it is
    rows = page.evaluate(
        """() => {
            cim.showProperties('JS-1', [['properties.tileMetadata',
                {utility: 'JS', section: 'DN300', diameter: 304.8, depth: 1.25, vendor: 'x'}]]);
            return [...document.querySelectorAll('#properties-table th')]
                .map(th => th.textContent);
        }"""
    )
    assert rows == [
        zh["properties.tileMetadata"],
        zh["prop.utility"],
        zh["prop.section"],
        zh["prop.diameter"],
        zh["prop.depth"],
        "vendor",
    ]
    harness.wait_settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => cim.viewer.render()")
    page.screenshot(path=str(ARTIFACTS / "viewer-zh-CN-tools.png"))
    page.evaluate(
        "() => { document.getElementById('properties').hidden = true;"
        " document.getElementById('panel').scrollTop = 0; cim.viewer.render(); }"
    )
    page.screenshot(path=str(ARTIFACTS / "viewer-zh-CN.png"))
    assert watch.console_errors == [] and watch.page_errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_download_buttons_save_the_answer_in_chinese(
    chinese_page: tuple[Any, harness.PageWatch], demo_city: DemoCity
) -> None:
    """The cross-section panel's CSV and Excel buttons save the answer's rows, headed in
    Chinese (lang=zh): as many rows as the JSON answer lists pipes."""
    page, _ = chinese_page
    if "crossSection" not in page.evaluate("() => cim.config.endpoints"):
        pytest.skip("no cross-section endpoint in this version")
    with demo_city.engine.connect() as connection:
        x0, y0, x1, y1 = connection.execute(
            text(
                "SELECT ST_X(a), ST_Y(a), ST_X(b), ST_Y(b) FROM ("
                " SELECT ST_LineInterpolatePoint(geom, 0.49) AS a,"
                " ST_LineInterpolatePoint(geom, 0.51) AS b FROM pipe_segment"
                " ORDER BY ST_Length(geom) DESC, code LIMIT 1) AS longest"
            )
        ).one()
    # a 20 m line square to the longest pipe through its middle
    mx, my, dx, dy = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    norm = math.hypot(dx, dy)
    nx, ny = -dy / norm * 10, dx / norm * 10
    to_wgs84 = transformer(DEMO_SRID, 4326)
    points = [
        list(to_wgs84.transform(mx - nx, my - ny)),
        list(to_wgs84.transform(mx + nx, my + ny)),
    ]
    answer = page.evaluate(
        "(points) => cim.tools.crossSection(points).then(() => cim.lastCrossSection)", points
    )
    assert answer and answer["pipes"], text_of(page, "#tool-hint")
    assert text_of(page, "#properties-title") == table("zh-CN")["section.title"].replace(
        "{count}", str(answer["pipe_count"])
    )
    saved = {}
    for format in ("csv", "xlsx"):
        with page.expect_download() as download:
            page.click(f"#cross-section-downloads button[data-format='{format}']")
        saved[format] = Path(download.value.path()).read_bytes()
        assert download.value.suggested_filename.endswith(f".{format}")
    rows = list(csv.reader(io.StringIO(saved["csv"].decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(saved["xlsx"])).worksheets[0]
    sheet_rows = [row for row in sheet.iter_rows(values_only=True) if any(row)]
    for found in (rows, sheet_rows):
        assert re.search(r"[\u4e00-\u9fff]", "".join(str(cell) for cell in found[0]))
        assert len(found) - 1 == len(answer["pipes"])


def test_english_browser_gets_the_english_page(viewer: ViewerPage) -> None:
    en = table("en")
    page = viewer.page
    assert page.evaluate("() => document.documentElement.lang") == "en"
    assert text_of(page, "#panel h2") == en["panel.layers"]
    if viewer.config["tilesets"] and any(t["layer"] == "pipes" for t in viewer.config["tilesets"]):
        legend = page.evaluate("() => document.getElementById('legend').textContent")
        assert "water supply" in legend and "给水" not in legend


@pytest.mark.browser
@pytest.mark.slow
def test_language_switch_applies_at_once_and_is_remembered(
    browser: Any, demo_city: DemoCity
) -> None:
    page, _ = open_page(browser, demo_city, "zh-CN")
    en = table("en")
    try:
        assert page.evaluate("() => i18n.locale") == "zh-CN"
        page.click("#locale-switch button[data-locale='en']")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        assert text_of(page, "#panel h2") == en["panel.layers"]
        assert page.get_by_label(en["layer.baseMap"], exact=True).is_checked()
        page.reload()
        page.wait_for_function("() => window.cim && (cim.ready || cim.errors.length)")
        assert page.evaluate("() => document.documentElement.lang") == "en"
        assert text_of(page, "#status").endswith(en["status.layers"].replace("{count}", "").strip())
        assert text_of(page, "#panel h2") == en["panel.layers"]
        page.click("#locale-switch button[data-locale='zh-CN']")
        page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
        assert_chinese_only(page)
    finally:
        page.close()
