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

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || `HTTP ${response.status}`);
    return answer;
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
    try {
      const answer = await postJson(cim.config.endpoints.crossSection, {
        line: { type: "LineString", coordinates: points },
        crs: "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
      });
      const pipes = answer.pipes || answer.crossings || [];
      const rows = {};
      pipes.forEach((p, i) => {
        rows[`${i + 1}. ${p.code ?? p.id}`] =
          `${p.utility ?? ""} @ ${Number(p.offset ?? 0).toFixed(1)} m, depth ${Number(p.depth ?? p.centre_depth ?? 0).toFixed(2)} m`;
      });
      cim.showProperties(`Cross-section: ${pipes.length} pipe(s)`, [["crossed pipes", rows]]);
      const extra = document.getElementById("properties-extra");
      extra.replaceChildren();
      if (answer.svg) extra.innerHTML = answer.svg;
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
      try {
        const answer = await postJson(cim.config.endpoints.isolation, {
          segment_id: p.id ?? p.feature_id,
          code: p.code,
          dataset_id: p.dataset_id ?? p.dataset,
        });
        highlightSegments(answer.isolated_segments || answer.segments || []);
        const valves = answer.valves || answer.valves_to_close || [];
        cim.showProperties(`Isolation of ${p.code ?? p.id}`, [
          ["tile metadata", p],
          ["isolation", {
            "valves to close": valves.map((v) => v.code ?? v).join(", "),
            "isolated segments": (answer.isolated_segments || answer.segments || []).length,
            "length (m)": answer.length_m ?? answer.length,
            "volume (m³)": answer.volume_m3 ?? answer.volume,
          }],
        ]);
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
      const id = plan.id ?? plan.plan_id;
      hint(`plan ${id}: zones coloured by load ratio (green empty → red full)`);
      await cim.addFeatureLayer("shelter_zones", id !== undefined ? `&plan_id=${id}` : "");
    } catch (error) {
      stop();
      hint(`shelter plan failed: ${error.message}`);
    }
  }

  function install() {
    const endpoints = (cim.config && cim.config.endpoints) || {};
    if (endpoints.crossSection) addTool("cross-section", "Cross-section along a line", crossSection);
    if (endpoints.isolation) addTool("isolation", "Burst-valve isolation (pick a pipe)", isolation);
    if (endpoints.shelterPlans) addTool("shelter-plan", "Run a shelter plan", shelterPlan);
  }

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
