// cim viewer analysis tools: the toolkit every tool file uses (buttons, hints, legend, API calls
// with the panel's key, drawing, pipe highlight), and the cross-section along a drawn line and
// burst-valve isolation of a picked pipe. A tool appears only when the API offers its endpoint
// (config.endpoints), so the viewer works before the analyses exist.
"use strict";

(function tools() {
  const cim = window.cim;
  let active = null;
  let highlighted = false;
  const drawn = []; // entities a tool drew: its line, its cut, its highlight lines
  const onStop = []; // what other tool files reset when a tool stops

  function hint(text) {
    document.getElementById("tool-hint").textContent = text || "";
  }

  function addTool(id, label, start, options) {
    // options: inputs shown under the button while the tool is active
    const button = document.createElement("button");
    button.id = `tool-${id}`;
    button.textContent = label;
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
    hint("");
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
    // entries: [css background, label]; null removes this tool's part of the legend
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
        li.append(swatch, label);
        list.append(li);
      }
      box.append(list);
    }
    box.hidden = box.children.length === 0;
  }

  function numberInput(id, label, value, attributes) {
    const input = document.createElement("input");
    Object.assign(input, { type: "number", id, value: String(value), ...attributes });
    const wrap = document.createElement("label");
    wrap.append(label, input);
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
      const auth = response.status === 401 || response.status === 403 ? " — enter an API key with that role" : "";
      const detail = typeof problem.detail === "string" ? problem.detail : `HTTP ${response.status}`;
      throw new Error(`${detail}${auth}`);
    }
    return response;
  }

  const post = (url, body, accept) => request("POST", url, body, accept);
  const postJson = async (url, body) => (await post(url, body)).json();
  const getJson = async (url) => (await request("GET", url, undefined, "application/geo+json, application/json")).json();

  function clearDrawn() {
    while (drawn.length) cim.viewer.entities.remove(drawn.pop());
    cim.viewer.scene.requestRender();
  }

  function dataTable(id, columns, rows) {
    // rows of strings, numbers (rounded to the millimetre) or DOM nodes; never HTML strings
    const table = document.createElement("table");
    table.id = id;
    table.className = "rows";
    const head = table.createTHead().insertRow();
    for (const column of columns) {
      const th = document.createElement("th");
      th.textContent = column;
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const value of row) {
        const cell = tr.insertCell();
        if (value instanceof Node) cell.append(value);
        else if (typeof value === "number" && !Number.isInteger(value)) cell.textContent = String(Number(value.toFixed(3)));
        else cell.textContent = value === null || value === undefined ? "–" : String(value);
      }
    }
    return table;
  }

  function swatchText(colour, text) {
    const span = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    span.append(swatch, ` ${text}`);
    return span;
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = text;
    return p;
  }

  function className(code) {
    const cls = (cim.config.utilityClasses || []).find((c) => c.code === code);
    return cls && cls.name;
  }

  function heading(text) {
    const h = document.createElement("h3");
    h.textContent = text;
    return h;
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
    hint("Click the start and the end of the section line.");
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
      for (const p of answer.pipes) {
        rows[p.code] = `${p.utility} ${p.section || ""} at ${p.offset_m} m, centre depth ${p.centre_depth_m ?? "?"} m`;
      }
      cim.showProperties(`Cross-section: ${answer.pipe_count} pipe(s)`, [
        ["section", { "line length (m)": answer.line_length_m, ground: answer.ground_source }],
        ["crossed pipes", rows],
      ]);
      // The drawing as an <img>: an SVG shown this way cannot run anything.
      const svg = await (await post(`${cim.config.endpoints.crossSection}?format=svg`, body, "image/svg+xml")).blob();
      const img = document.createElement("img");
      img.alt = "cross-section drawing";
      img.src = URL.createObjectURL(svg);
      document.getElementById("properties-extra").replaceChildren(img);
      cim.lastCrossSection = answer;
    } catch (error) {
      hint(`cross-section failed: ${error.message}`);
    }
  }

  // ---- isolation: pick a pipe, the API answers with the valves to close -------------------
  function isolation() {
    hint("Click a pipe to find the valves that isolate it.");
    cim.onPick = async (selected) => {
      if (selected.layer !== "pipes") return;
      stop();
      const p = selected.properties;
      const segmentId = p.table_id ?? p.id;
      try {
        const answer = await postJson(cim.config.endpoints.isolation, { segment_id: segmentId });
        highlightSegments(answer.isolated_segments);
        cim.lastIsolation = answer;
        cim.showProperties(`Isolation of ${p.code}`, [
          ["tile metadata", p],
          ["burst-valve isolation", {
            "valves to close": answer.valves_to_close.map((v) => v.code).join(", ") || "none",
            "isolated segments": answer.segment_count,
            "length (m)": answer.length_m,
            "volume (m³)": answer.volume_m3,
          }],
        ]);
        hint("Isolated segments in magenta; pick another tool to reset.");
      } catch (error) {
        hint(`isolation failed: ${error.message}`);
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
    if (endpoints.crossSection) addTool("cross-section", "Cross-section along a line", crossSection);
    if (endpoints.isolation) addTool("isolation", "Burst-valve isolation (pick a pipe)", isolation);
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
    addTool, hasPipes, stop, onStop, hint, legend, numberInput, groundPoint, postJson, getJson,
    draw, clearDrawn, highlightCodes, dataTable, swatchText, heading, note, className,
  };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
