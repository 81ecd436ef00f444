// cim viewer analysis tools: the toolkit every tool file uses (buttons, hints, legend, API calls
// with the panel's key, drawing, pipe highlight), and the cross-section along a drawn line and
// burst-valve isolation of a picked pipe. A tool appears only when the API offers its endpoint
// (config.endpoints), so the viewer works before the analyses exist.
"use strict";

(function tools() {
  const cim = window.cim;
  const { t } = window.i18n;
  let active = null;
  let highlighted = false;
  const drawn = []; // entities a tool drew: its line, its cut, its highlight lines
  const onStop = []; // what other tool files reset when a tool stops

  // The hint line under the tools: a string-table key and its params (re-translated on a
  // language switch); `error` marks a failure for the user (red) and for the browser tests.
  function hint(key, params, error = false) {
    const el = document.getElementById("tool-hint");
    if (key) window.i18n.set(el, key, params);
    else {
      delete el.dataset.i18n;
      el.textContent = "";
    }
    el.classList.toggle("error", Boolean(key) && error);
  }
  const failed = (key, error) => hint(key, { message: error.message }, true);

  function addTool(id, labelKey, start, options) {
    // options: inputs shown under the button while the tool is active
    const button = document.createElement("button");
    button.id = `tool-${id}`;
    window.i18n.set(button, labelKey);
    button.addEventListener("click", () => {
      const was = active;
      stop();
      if (was !== id) {
        active = id;
        button.classList.add("active");
        if (options) options.hidden = false;
        start();
      }
    });
    document.getElementById("tools").append(button);
    if (options) {
      options.hidden = true;
      options.classList.add("tool-options");
      document.getElementById("tools").append(options);
    }
    document.getElementById("tools-section").hidden = false;
  }

  function stop() {
    active = null;
    cim.onPick = null;
    for (const reset of onStop) reset();
    hint(null);
    for (const b of document.querySelectorAll("#tools button")) b.classList.remove("active");
    for (const o of document.querySelectorAll("#tools .tool-options")) o.hidden = true;
    if (highlighted) {
      highlighted = false;
      clearDrawn(); // the cut and the lines drawn with the highlight
      legend("pipes", null);
      cim.applyClassStyle(); // back to the class colours (and hidden classes)
    }
    if (cim.toolHandler) {
      cim.toolHandler.destroy();
      cim.toolHandler = null;
    }
  }

  function legend(key, entries) {
    // entries: [css background, string-table key or a Node]; null removes this tool's part
    const box = document.getElementById("tool-legend");
    const old = box.querySelector(`[data-legend="${key}"]`);
    if (old) old.remove();
    if (entries) {
      const list = document.createElement("ul");
      list.dataset.legend = key;
      for (const [background, label] of entries) {
        const li = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = background;
        li.append(swatch, label instanceof Node ? label : window.i18n.span(label));
        list.append(li);
      }
      box.append(list);
    }
    box.hidden = box.children.length === 0;
  }

  function numberInput(id, labelKey, value, attributes) {
    const input = document.createElement("input");
    Object.assign(input, { type: "number", id, value: String(value), ...attributes });
    const wrap = document.createElement("label");
    wrap.append(window.i18n.span(labelKey), input);
    return wrap;
  }

  function groundPoint(position) {
    // The terrain under the cursor (not a pipe or building in front of it), so drawn lines and
    // cuts lie on the ground; the depth buffer or the ellipsoid when no globe tile is hit.
    const scene = cim.viewer.scene;
    const ray = cim.viewer.camera.getPickRay(position);
    const cartesian = (ray && scene.globe.pick(ray, scene))
      || (scene.pickPositionSupported && scene.pickPosition(position))
      || cim.viewer.camera.pickEllipsoid(position, scene.globe.ellipsoid);
    if (!cartesian) return null;
    const c = Cesium.Cartographic.fromCartesian(cartesian);
    return [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude)];
  }

  function headers(extra) {
    // Writes (a stored shelter plan) and sensitive pipe classes need an API key; it stays in
    // this browser tab only.
    const key = sessionStorage.getItem("cim-api-key");
    return { "Content-Type": "application/json", ...(key ? { "X-API-Key": key } : {}), ...extra };
  }

  async function request(method, url, body, accept = "application/json") {
    const init = { method, headers: headers({ Accept: accept }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(url, init);
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      // the server's own message (its language), else the status
      const detail = typeof problem.detail === "string" ? problem.detail : t("error.httpStatus", { status: response.status });
      throw new Error(response.status === 401 || response.status === 403 ? t("error.needsKey", { detail }) : detail);
    }
    return response;
  }

  const post = (url, body, accept) => request("POST", url, body, accept);
  const postJson = async (url, body) => (await post(url, body)).json();
  const getJson = async (url) => (await request("GET", url, undefined, "application/geo+json, application/json")).json();

  // ---- downloads: the answer shown, again from the API as a CSV or xlsx file --------------
  // The file's headers are in the page's language (lang=zh|en); the API names the file.
  async function download(url, method, body, format) {
    const lang = window.i18n.locale.startsWith("zh") ? "zh" : "en";
    const separator = url.includes("?") ? "&" : "?";
    const response = await request(method, `${url}${separator}format=${format}&lang=${lang}`, body, "*/*");
    const blob = await response.blob();
    const named = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = named ? named[1] : `cim.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    cim.lastDownload = { name: link.download, size: blob.size, type: blob.type };
  }

  // "Download: CSV | Excel" for one analysis answer: the same request (url, method, body).
  function downloads(id, url, method, body, labelKey = "download.label") {
    const box = document.createElement("p");
    box.className = "downloads";
    box.id = `${id}-downloads`;
    box.append(window.i18n.span(labelKey));
    for (const format of ["csv", "xlsx"]) {
      const button = document.createElement("button");
      button.className = "download";
      button.dataset.format = format;
      window.i18n.set(button, `download.${format}`);
      button.addEventListener("click", () =>
        download(url, method, body, format).catch((error) => failed("download.failed", error)));
      box.append(button);
    }
    return box;
  }

  // An endpoint of config.endpoints, else found in the API's OpenAPI document (fetched once)
  // for routes the server's viewer config does not list yet; null when the API has none.
  let openapi = null;
  async function endpoint(name, method, path) {
    const listed = cim.config.endpoints && cim.config.endpoints[name];
    if (listed) return listed;
    openapi ??= fetch("/api", { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : {}))
      .catch(() => ({}));
    const operations = ((await openapi).paths || {})[path];
    return operations && operations[method.toLowerCase()] ? path : null;
  }

  function clearDrawn() {
    while (drawn.length) cim.viewer.entities.remove(drawn.pop());
    cim.viewer.scene.requestRender();
  }

  function dataTable(id, columns, rows) {
    // columns: string-table keys; rows of strings, numbers (rounded to the millimetre, in the
    // locale's format) or DOM nodes; never HTML strings
    const table = document.createElement("table");
    table.id = id;
    table.className = "rows";
    const head = table.createTHead().insertRow();
    for (const column of columns) {
      const th = document.createElement("th");
      window.i18n.set(th, column);
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const value of row) {
        const cell = tr.insertCell();
        if (value instanceof Node) cell.append(value);
        else if (typeof value === "number") cell.textContent = window.i18n.number(value);
        else cell.textContent = value === null || value === undefined ? "–" : String(value);
      }
    }
    return table;
  }

  function swatchText(colour, content) {
    // content: data text, or a Node (a translated span)
    const span = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    span.append(swatch, " ", content);
    return span;
  }

  function note(key) {
    const p = document.createElement("p");
    p.className = "hint";
    return window.i18n.set(p, key);
  }

  function className(code) {
    // the CJJ 61 name of a class in the page's language (a span that follows a switch)
    const cls = (cim.config.utilityClasses || []).find((c) => c.code === code);
    return cls && window.i18n.setName(document.createElement("span"), { en: cls.name, "zh-CN": cls.nameZh });
  }

  function heading(key) {
    const h = document.createElement("h3");
    return window.i18n.set(h, key);
  }

  function highlightCodes(colourByCode) {
    // One style condition per colour: pipes not listed fade to translucent white.
    const entry = cim.tilesets.pipes;
    if (!entry || !entry.tileset) return;
    const byColour = {};
    for (const [code, colour] of Object.entries(colourByCode)) {
      (byColour[colour] ??= []).push(`'${String(code).replace(/['\\]/g, "")}'`);
    }
    const conditions = Object.entries(byColour).map(([colour, codes]) => [
      `\${code} === ${codes.join(" || ${code} === ")}`, `color('${colour}')`,
    ]);
    entry.tileset.style = conditions.length
      ? new Cesium.Cesium3DTileStyle({ color: { conditions: [...conditions, ["true", "color('white', 0.35)"]] } })
      : undefined;
    highlighted = conditions.length > 0;
    cim.viewer.scene.requestRender();
  }

  function highlightSegments(segments) {
    highlightCodes(Object.fromEntries(segments.map((s) => [s.code ?? s, "magenta"])));
  }

  // ---- cross-section: two clicks draw a line, the API answers with the pipes it crosses ----
  function crossSection() {
    clearDrawn();
    const points = [];
    hint("section.hint");
    cim.toolHandler = new Cesium.ScreenSpaceEventHandler(cim.viewer.scene.canvas);
    cim.toolHandler.setInputAction(async (click) => {
      const point = groundPoint(click.position);
      if (!point) return;
      points.push(point);
      if (points.length < 2) return;
      drawn.push(cim.viewer.entities.add({
        polyline: {
          positions: Cesium.Cartesian3.fromDegreesArray(points.flat()),
          width: 3,
          material: Cesium.Color.YELLOW,
          clampToGround: true,
        },
      }));
      stop();
      await runCrossSection(points);
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
  }

  async function runCrossSection(points) {
    const body = { line: { type: "LineString", coordinates: points }, crs: "EPSG:4326" };
    cim.lastCrossSection = null;
    try {
      const answer = await postJson(cim.config.endpoints.crossSection, body);
      const rows = {};
      const { number } = window.i18n;
      for (const p of answer.pipes) {
        rows[p.code] = window.i18n.span("section.pipeRow", {
          utility: p.utility,
          section: p.section || "",
          offset: number(p.offset_m),
          depth: p.centre_depth_m === null || p.centre_depth_m === undefined ? "–" : number(p.centre_depth_m),
        });
      }
      cim.showProperties(["section.title", { count: answer.pipe_count }], [
        ["section.section", { "section.lineLength": answer.line_length_m, "section.ground": answer.ground_source }],
        ["section.crossedPipes", rows],
      ]);
      // The drawing as an <img>: an SVG shown this way cannot run anything. Its labels in the
      // page's language where the API offers `lang` (ignored otherwise).
      const lang = window.i18n.locale.startsWith("zh") ? "zh" : "en";
      const svg = await (await post(`${cim.config.endpoints.crossSection}?format=svg&lang=${lang}`, body, "image/svg+xml")).blob();
      const img = document.createElement("img");
      img.dataset.i18nAlt = "section.drawing";
      img.alt = t("section.drawing");
      img.src = URL.createObjectURL(svg);
      document.getElementById("properties-extra").replaceChildren(
        downloads("cross-section", cim.config.endpoints.crossSection, "POST", body), img);
      cim.lastCrossSection = answer;
    } catch (error) {
      failed("section.failed", error);
    }
  }

  // ---- isolation: pick a pipe, the API answers with the valves to close -------------------
  function isolation() {
    hint("isolation.hint");
    cim.onPick = async (selected) => {
      if (selected.layer !== "pipes") return;
      stop();
      const p = selected.properties;
      const segmentId = p.table_id ?? p.id;
      try {
        const answer = await postJson(cim.config.endpoints.isolation, { segment_id: segmentId });
        highlightSegments(answer.isolated_segments);
        cim.lastIsolation = answer;
        const valves = answer.valves_to_close.map((v) => v.code).join(", ");
        cim.showProperties(["isolation.title", { code: p.code }], [
          ["properties.tileMetadata", p],
          ["isolation.section", {
            "isolation.valves": valves || window.i18n.span("properties.none"),
            "isolation.segments": answer.segment_count,
            "isolation.length": answer.length_m,
            "isolation.volume": answer.volume_m3,
          }],
        ]);
        document.getElementById("properties-extra").replaceChildren(
          downloads("isolation", cim.config.endpoints.isolation, "POST", { segment_id: segmentId }));
        hint("isolation.done");
      } catch (error) {
        failed("isolation.failed", error);
      }
    };
  }

  function install() {
    const endpoints = (cim.config && cim.config.endpoints) || {};
    const key = document.getElementById("api-key");
    key.value = sessionStorage.getItem("cim-api-key") || "";
    key.addEventListener("change", () => sessionStorage.setItem("cim-api-key", key.value.trim()));
    // the pipe tools pick and highlight in the pipes tileset: none without it (e.g. a city
    // with shelters only)
    if (!hasPipes()) return;
    if (endpoints.crossSection) addTool("cross-section", "tool.crossSection", crossSection);
    if (endpoints.isolation) addTool("isolation", "tool.isolation", isolation);
  }

  function hasPipes() {
    return ((cim.config && cim.config.tilesets) || []).some((t) => t.layer === "pipes");
  }

  function draw(options) {
    const entity = cim.viewer.entities.add(options);
    drawn.push(entity);
    return entity;
  }

  // For scripts and the browser tests: the tools without the clicks.
  cim.tools = { crossSection: runCrossSection, highlightSegments };
  // For the other tool files (excavation-tool.js, shelter-tools.js).
  cim.toolkit = {
    addTool, hasPipes, stop, onStop, hint, failed, legend, numberInput, groundPoint, postJson, getJson,
    draw, clearDrawn, highlightCodes, dataTable, swatchText, heading, note, className, downloads, endpoint,
  };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
