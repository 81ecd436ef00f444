// cim viewer analysis tools: cross-section along a drawn line, burst-valve isolation of a picked
// pipe, shelter plan with zones coloured by load ratio. A tool appears only when the API offers
// its endpoint (config.endpoints), so the viewer works before the analyses exist.
"use strict";

(function tools() {
  const cim = window.cim;
  let active = null;
  const drawn = [];

  function hint(text) {
    document.getElementById("tool-hint").textContent = text || "";
  }

  function addTool(id, label, start) {
    const button = document.createElement("button");
    button.id = `tool-${id}`;
    button.textContent = label;
    button.addEventListener("click", () => {
      const was = active;
      stop();
      if (was !== id) {
        active = id;
        button.classList.add("active");
        start();
      }
    });
    document.getElementById("tools").append(button);
    document.getElementById("tools-section").hidden = false;
  }

  function stop() {
    active = null;
    cim.onPick = null;
    hint("");
    for (const b of document.querySelectorAll("#tools button")) b.classList.remove("active");
    const pipes = cim.tilesets.pipes;
    if (pipes && pipes.tileset && cim.lastIsolation) {
      cim.lastIsolation = null;
      pipes.tileset.style = undefined;
    }
    if (cim.toolHandler) {
      cim.toolHandler.destroy();
      cim.toolHandler = null;
    }
  }

  function groundPoint(position) {
    const scene = cim.viewer.scene;
    const cartesian = (scene.pickPositionSupported && scene.pickPosition(position))
      || cim.viewer.camera.pickEllipsoid(position, scene.globe.ellipsoid);
    if (!cartesian) return null;
    const c = Cesium.Cartographic.fromCartesian(cartesian);
    return [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude)];
  }

  function headers(extra) {
    // Writes (a stored shelter plan) need an API key; it stays in this browser tab only.
    const key = sessionStorage.getItem("cim-api-key");
    return { "Content-Type": "application/json", ...(key ? { "X-API-Key": key } : {}), ...extra };
  }

  async function post(url, body, accept = "application/json") {
    const response = await fetch(url, { method: "POST", headers: headers({ Accept: accept }), body: JSON.stringify(body) });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      const auth = response.status === 401 || response.status === 403 ? " — enter an API key with that role" : "";
      throw new Error(`${problem.detail || `HTTP ${response.status}`}${auth}`);
    }
    return response;
  }

  async function postJson(url, body) {
    return (await post(url, body)).json();
  }

  function clearDrawn() {
    while (drawn.length) cim.viewer.entities.remove(drawn.pop());
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

  function highlightSegments(segments) {
    const entry = cim.tilesets.pipes;
    if (!entry || !entry.tileset) return;
    const codes = segments.map((s) => `'${String(s.code ?? s).replace(/'/g, "")}'`);
    entry.tileset.style = codes.length
      ? new Cesium.Cesium3DTileStyle({
        color: { conditions: [[`\${code} === ${codes.join(" || ${code} === ")}`, "color('magenta')"], ["true", "color('white', 0.35)"]] },
      })
      : undefined;
    cim.viewer.scene.requestRender();
  }

  // ---- shelter plan: run a plan, show its zones coloured by load ratio ----------------------
  async function shelterPlan() {
    hint("Running a shelter plan…");
    try {
      const plan = await postJson(cim.config.endpoints.shelterPlans, {});
      stop();
      cim.lastPlan = plan;
      hint(`plan ${plan.id ?? ""}: zones coloured by load ratio (green empty → red full)`);
      await cim.addFeatureLayer("shelter_zones", ""); // the collection shows the newest plan
    } catch (error) {
      stop();
      hint(`shelter plan failed: ${error.message}`);
    }
  }

  function install() {
    const endpoints = (cim.config && cim.config.endpoints) || {};
    const key = document.getElementById("api-key");
    key.value = sessionStorage.getItem("cim-api-key") || "";
    key.addEventListener("change", () => sessionStorage.setItem("cim-api-key", key.value.trim()));
    if (endpoints.crossSection) addTool("cross-section", "Cross-section along a line", crossSection);
    if (endpoints.isolation) addTool("isolation", "Burst-valve isolation (pick a pipe)", isolation);
    if (endpoints.shelterPlans) addTool("shelter-plan", "Run a shelter plan", shelterPlan);
  }

  // For scripts and the browser tests: the tools without the clicks.
  cim.tools = { crossSection: runCrossSection, highlightSegments };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
