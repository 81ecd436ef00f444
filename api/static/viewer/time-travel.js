// cim viewer time travel (时间, issue 18): a slider over the instants at which a pipe dataset got
// a new version, and "now". The 3D tiles always show the current state, so a past instant hides
// the pipe tiles (and the far-view overview lines) and draws the pipe segments valid then from
// the OGC API (`datetime`, within the view's extent), coloured by CJJ 61 class like the tiles;
// "now" brings the tiles back. The network only changes when a version is imported, so the
// version instants are every state there is to see; the exact instant of a version (to the
// microsecond, as the API gave it) is what is asked for, never a rounded browser date.
"use strict";

(function timeTravel() {
  const cim = window.cim;
  const kit = cim.toolkit;
  // a page of segments; more in the view are reported in the hint, not fetched
  const PAST_LIMIT = 5000;
  let instants = []; // [{at: ISO, dataset, version}] oldest first; the slider's last step is now
  let past = null; // {at, drawn: [codes]} while a past instant is shown
  let request = 0; // the newest fetch wins when the slider moves faster than the API answers
  let moveListener = null;

  function timeOptions() {
    const box = document.createElement("div");
    box.id = "time-options";
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", id: "time-slider", min: "0", max: "0", step: "1", value: "0" });
    const label = document.createElement("span");
    label.id = "time-label";
    const now = document.createElement("button");
    now.id = "time-now";
    window.i18n.set(now, "time.now");
    slider.addEventListener("input", () => showLabel(Number(slider.value)));
    slider.addEventListener("change", () => choose(Number(slider.value)));
    now.addEventListener("click", () => {
      slider.value = String(instants.length);
      choose(instants.length);
    });
    const wrap = document.createElement("label");
    wrap.className = "range";
    wrap.append(slider);
    box.append(wrap, label, now);
    return box;
  }

  function showLabel(index) {
    const label = document.getElementById("time-label");
    const step = instants[index];
    if (!step) window.i18n.set(label, "time.nowLabel");
    else window.i18n.set(label, "time.instant", { date: window.i18n.date(step.at), name: step.dataset, version: step.version });
  }

  async function loadInstants() {
    const versioned = await cim.tools.loadVersioned();
    const all = [];
    for (const entry of versioned) {
      for (const v of entry.versions) all.push({ at: v.created_at, dataset: entry.dataset.name, version: v.version });
    }
    return all.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  }

  async function start() {
    kit.hint("time.loading");
    try {
      instants = await loadInstants();
    } catch (error) {
      kit.failed("time.failed", error);
      return;
    }
    const slider = document.getElementById("time-slider");
    slider.max = String(instants.length);
    slider.value = String(instants.length);
    showLabel(instants.length);
    kit.hint(instants.length ? "time.hint" : "time.none");
  }

  function choose(index) {
    showLabel(index);
    const step = instants[index];
    if (step) return showPast(step.at);
    backToNow();
    return null;
  }

  function pipeLayersShown(on) {
    // the tiles and the overview lines show the current state: hidden while the past is shown
    const entry = cim.tilesets.pipes;
    if (entry && entry.tileset) entry.tileset.show = on && cim.pipesShown !== false;
    cim.timeTravelActive = !on;
    if (cim.updateOverview) cim.updateOverview();
    cim.viewer.scene.requestRender();
  }

  function viewBbox() {
    // the camera's extent on the ground in CRS84; the datasets' union when the sky is in view
    const rectangle = cim.viewer.camera.computeViewRectangle();
    if (rectangle) {
      return [rectangle.west, rectangle.south, rectangle.east, rectangle.north].map((r) => Cesium.Math.toDegrees(r));
    }
    const boxes = cim.datasets.filter((d) => d.bbox).map((d) => d.bbox);
    if (!boxes.length) return null;
    return [0, 1, 2, 3].map((i) => (i < 2 ? Math.min : Math.max)(...boxes.map((b) => b[i])));
  }

  function drawSegments(features) {
    kit.clearDrawn();
    const colours = Object.fromEntries((cim.config.utilityClasses || []).map((c) => [c.code, c.colour]));
    const materials = {};
    for (const feature of features) {
      const { code, utility } = feature.properties;
      materials[utility] ??= Cesium.Color.fromCssColorString(colours[utility] || "#ffffff");
      const geometry = feature.geometry;
      if (!geometry) continue;
      const lines = geometry.type === "MultiLineString" ? geometry.coordinates : [geometry.coordinates];
      for (const line of lines) {
        kit.draw({
          name: code,
          properties: { code, utility, valid_at: past && past.at },
          polyline: {
            positions: Cesium.Cartesian3.fromDegreesArrayHeights(line.flatMap(([x, y, z]) => [x, y, z ?? 0])),
            width: 4,
            arcType: Cesium.ArcType.NONE,
            material: materials[utility],
            depthFailMaterial: materials[utility].withAlpha(0.6),
          },
        });
      }
    }
    cim.renderUntilBuilt();
  }

  async function showPast(at) {
    const mine = (request += 1);
    past = { at, drawn: null };
    pipeLayersShown(false);
    if (!moveListener) moveListener = cim.viewer.camera.moveEnd.addEventListener(() => past && showPast(past.at));
    const bbox = viewBbox();
    const query = new URLSearchParams({ datetime: at, limit: String(PAST_LIMIT), properties: "code,utility" });
    if (bbox) query.set("bbox", bbox.map((v) => v.toFixed(7)).join(","));
    kit.hint("time.loadingPast");
    try {
      const page = await kit.getJson(`/collections/pipe_segments/items?${query}`);
      if (mine !== request || !past) return;
      drawSegments(page.features);
      past.drawn = page.features.map((f) => f.properties.code);
      const matched = page.numberMatched ?? page.features.length;
      const params = { count: page.features.length, matched, date: window.i18n.date(at) };
      kit.hint(matched > page.features.length ? "time.partial" : "time.shown", params);
      cim.timeTravel = { at, codes: [...past.drawn], matched };
    } catch (error) {
      if (mine === request) kit.failed("time.failed", error);
    }
  }

  function backToNow() {
    request += 1;
    past = null;
    if (moveListener) {
      moveListener(); // removes the camera listener
      moveListener = null;
    }
    kit.clearDrawn();
    pipeLayersShown(true);
    cim.timeTravel = { at: null, codes: [], matched: 0 };
  }

  function install() {
    const pipes = cim.datasets.some((d) => d.kind === "pipes"); // the versioned kind
    if (pipes && cim.config.endpoints.datasets && cim.config.endpoints.collections) {
      kit.addTool("time", "tool.time", start, timeOptions());
    }
  }

  // Another tool (or this button again) returns to the present.
  kit.onStop.push(() => {
    if (past) backToNow();
  });
  // For scripts and the browser tests: a slider step chosen without the mouse.
  cim.tools.timeTravel = { choose, instants: () => instants };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
