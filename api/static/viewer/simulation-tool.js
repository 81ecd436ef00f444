// cim viewer simulations (issue 19): shutdown impact (关阀停水影响) - pick a water pipe, POST
// /analysis/pipes/shutdown isolates it and simulates the network with the valves closed; nodes
// are coloured by how far their pressure fell, the nodes cut off and the outage area (the hull
// of the nodes without water or below the service pressure) drawn - and urban flooding (内涝) -
// POST /analysis/drainage/flood runs SWMM on a drainage dataset with its own rain or a design
// storm; flooded nodes are sized by volume and the ponded extents draped on the ground; with an
// analyst key the extents can be saved as hazard zones (POST /analysis/drainage/flood/hazards)
// that a shelter plan then excludes. Both answers' numbers go in the panel, their tables in the
// download buttons.
"use strict";

(function simulationTools() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { span } = window.i18n;
  const DROP_LOW = Cesium.Color.fromCssColorString("#ffe14d"); // a small pressure fall
  const DROP_HIGH = Cesium.Color.fromCssColorString("#d7191c"); // the largest fall of the answer
  // roles of the shutdown GeoJSON; labelled by shutdown.legend.*
  const SHUTDOWN_COLOURS = { isolated: "#6a3d9a", close: "#000000", closed: "#ff00ff", area: "#e8412c" };
  const FLOOD_NODE = Cesium.Color.fromCssColorString("#1f78ff");
  const FLOOD_EXTENT = Cesium.Color.fromCssColorString("#4fc3ff");
  const DRAINAGE = ["PS", "YS", "WS"]; // CJJ 61 drainage classes: combined, storm, sewage
  const endpoints = {};

  const dropColour = (drop, largest) => Cesium.Color.lerp(DROP_LOW, DROP_HIGH, largest > 0 ? Math.min(1, drop / largest) : 1, new Cesium.Color());

  function roleColour(role, drop, largest) {
    // nodes cut off and valves closed have their own colour; the others show their fall
    if (role === "isolated" || role === "close") return Cesium.Color.fromCssColorString(SHUTDOWN_COLOURS[role]);
    return dropColour(drop, largest);
  }

  function point(coordinates, colour, pixelSize, properties, name) {
    const [x, y, z] = coordinates;
    return kit.draw({
      name,
      properties,
      position: Cesium.Cartesian3.fromDegrees(x, y, z ?? 0),
      point: { pixelSize, color: colour, outlineColor: Cesium.Color.WHITE, outlineWidth: 1, disableDepthTestDistance: Number.POSITIVE_INFINITY },
    });
  }

  function hull(points) {
    // convex hull (Andrew's monotone chain) of [lon, lat] points: the outage area's outline
    const sorted = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const half = (list) => list.reduce((chain, p) => {
      while (chain.length >= 2 && cross(chain[chain.length - 2], chain[chain.length - 1], p) <= 0) chain.pop();
      chain.push(p);
      return chain;
    }, []);
    const lower = half(sorted);
    const upper = half([...sorted].reverse());
    return [...lower.slice(0, -1), ...upper.slice(0, -1)];
  }

  function drawArea(ring, colour) {
    if (ring.length < 3) return;
    kit.draw({
      polygon: {
        hierarchy: Cesium.Cartesian3.fromDegreesArray(ring.flat()),
        material: colour.withAlpha(0.3),
        classificationType: Cesium.ClassificationType.TERRAIN,
      },
    });
  }

  // ---- shutdown impact -----------------------------------------------------------------------
  function shutdownOptions() {
    const box = document.createElement("div");
    box.id = "shutdown-options";
    box.append(
      kit.numberInput("shutdown-hours", "shutdown.hours", 24, { min: "1", max: "168", step: "1" }),
      kit.numberInput("shutdown-pressure", "shutdown.pressure", 14, { min: "0", max: "200", step: "1" }),
    );
    return box;
  }

  function shutdown() {
    kit.hint("shutdown.hint");
    cim.onPick = (selected) => {
      if (selected.layer !== "pipes") return;
      const p = selected.properties;
      const hours = Number(document.getElementById("shutdown-hours").value);
      const pressure = Number(document.getElementById("shutdown-pressure").value);
      if (!(hours > 0 && hours <= 168) || !(pressure >= 0)) {
        kit.hint("shutdown.badNumbers", undefined, true);
        return;
      }
      kit.stop();
      runShutdown({ segment_id: p.table_id ?? p.id, duration_h: hours, service_pressure_m: pressure }, p.code);
    };
  }

  function drawShutdown(answer) {
    const features = (answer.geojson && answer.geojson.features) || [];
    // the ramp spans the nodes beyond the ring: those inside lose all their pressure by design
    const largest = Math.max(0, ...answer.nodes.filter((n) => n.role !== "isolated").map((n) => n.max_drop_m));
    const outage = [];
    for (const feature of features) {
      const p = feature.properties;
      const geometry = feature.geometry;
      if (!geometry) continue;
      if (geometry.type === "Point") {
        const colour = roleColour(p.role, p.max_drop_m ?? 0, largest);
        point(geometry.coordinates, colour, p.role === "close" ? 12 : 9, p, p.code);
        if (p.role === "isolated" || p.role === "below_service") outage.push(geometry.coordinates.slice(0, 2));
      } else if (geometry.type === "LineString") {
        kit.draw({
          properties: p,
          polyline: {
            positions: Cesium.Cartesian3.fromDegreesArrayHeights(geometry.coordinates.flatMap(([x, y, z]) => [x, y, z ?? 0])),
            width: 5,
            arcType: Cesium.ArcType.NONE,
            material: Cesium.Color.fromCssColorString(SHUTDOWN_COLOURS.closed),
            depthFailMaterial: Cesium.Color.fromCssColorString(SHUTDOWN_COLOURS.closed).withAlpha(0.6),
          },
        });
      }
    }
    drawArea(hull(outage), Cesium.Color.fromCssColorString(SHUTDOWN_COLOURS.area));
    const ramp = `linear-gradient(to right, ${DROP_LOW.toCssColorString()}, ${DROP_HIGH.toCssColorString()})`;
    kit.legend("shutdown", [
      [ramp, span("shutdown.legend.drop", { max: window.i18n.number(Math.round(largest * 100) / 100) })],
      ...["isolated", "close", "closed", "area"].map((c) => [SHUTDOWN_COLOURS[c], `shutdown.legend.${c}`]),
    ]);
    cim.renderUntilBuilt();
    return { largest, outagePoints: outage.length };
  }

  async function runShutdown(request, code) {
    const body = { ...request, geojson_crs: "EPSG:4326" };
    cim.lastShutdown = null;
    kit.hint("shutdown.computing");
    try {
      const answer = await kit.postJson(endpoints.shutdown, body);
      kit.clearDrawn();
      if (answer.isolation) cim.tools.highlightSegments(answer.isolation.isolated_segments);
      const drawn = drawShutdown(answer);
      shown = true;
      const demand = answer.demand;
      cim.showProperties(["shutdown.title", { code: code ?? "" }], [
        ["shutdown.section", {
          "shutdown.closedLinks": answer.closed_links.length,
          "shutdown.isolatedNodes": answer.isolated_nodes.length,
          "shutdown.belowService": answer.below_service_nodes.length,
          "shutdown.affectedBeyond": answer.affected_beyond_count,
          "shutdown.expected": demand.expected_m3,
          "shutdown.notServed": demand.not_served_m3,
          "shutdown.notServedPercent": window.i18n.percent(demand.not_served_percent / 100),
          "shutdown.duration": answer.duration_h,
          "shutdown.servicePressure": answer.service_pressure_m,
        }],
      ]);
      const { number } = window.i18n;
      document.getElementById("properties-extra").replaceChildren(
        kit.downloads("shutdown", endpoints.shutdown, "POST", { ...request, geojson: false }),
        kit.heading("shutdown.nodes"),
        kit.dataTable("shutdown-nodes", ["code", "role", "before", "after", "drop"].map((c) => `shutdown.col.${c}`),
          answer.nodes.slice(0, 200).map((n) => [n.code, span(`shutdown.role.${n.role}`), number(n.before_min_m), number(n.after_min_m),
            kit.swatchText(roleColour(n.role, n.max_drop_m, drawn.largest).toCssColorString(), number(n.max_drop_m))])),
        kit.note("shutdown.note"),
      );
      kit.hint("shutdown.done", { count: answer.affected_beyond_count });
      cim.lastShutdown = { request: body, answer, drawn };
    } catch (error) {
      kit.failed("shutdown.failed", error);
    }
  }

  // ---- urban flooding --------------------------------------------------------------------------
  function floodOptions() {
    const box = document.createElement("div");
    box.id = "flood-options";
    const dataset = document.createElement("select");
    dataset.id = "flood-dataset";
    const label = document.createElement("label");
    label.append(span("flood.dataset"), dataset);
    const run = document.createElement("button");
    run.id = "flood-run";
    window.i18n.set(run, "flood.run");
    run.addEventListener("click", () => {
      const period = document.getElementById("flood-period").value.trim();
      const minutes = Number(document.getElementById("flood-minutes").value);
      const body = { dataset_id: Number(dataset.value) };
      if (period !== "") {
        if (!(Number(period) > 0) || !(minutes > 0)) {
          kit.hint("flood.badNumbers", undefined, true);
          return;
        }
        body.storm = { return_period_a: Number(period), duration_min: Math.round(minutes) };
      }
      runFlood(body);
    });
    const period = kit.numberInput("flood-period", "flood.period", "", { min: "1", step: "1" });
    const periodInput = period.querySelector("input");
    periodInput.dataset.i18nPlaceholder = "flood.periodHint"; // empty: the model's own rain
    periodInput.placeholder = window.i18n.t("flood.periodHint");
    box.append(
      label,
      period,
      kit.numberInput("flood-minutes", "flood.minutes", 120, { min: "5", step: "5" }),
      run,
    );
    return box;
  }

  async function flood() {
    kit.hint("flood.loading");
    try {
      const listing = await kit.getJson(`${cim.config.endpoints.datasets}?kind=pipes`);
      const all = listing.datasets || [];
      const drainage = all.filter((d) => Object.keys((d.counts || {}).utilities || {}).some((u) => DRAINAGE.includes(u.slice(0, 2))));
      const offered = drainage.length ? drainage : all;
      document.getElementById("flood-dataset").replaceChildren(
        ...offered.map((d) => new Option(`${d.name} (#${d.id})`, String(d.id))));
      kit.hint(offered.length ? "flood.hint" : "flood.none");
    } catch (error) {
      kit.failed("flood.failed", error);
    }
  }

  function drawFlood(answer) {
    const features = (answer.geojson && answer.geojson.features) || [];
    const largest = Math.max(0, ...answer.flooded_nodes.map((n) => n.volume_m3));
    const sizes = [];
    for (const feature of features) {
      const p = feature.properties;
      const geometry = feature.geometry;
      if (!geometry) continue;
      if (p.role === "flooded" && geometry.type === "Point") {
        const size = 8 + 22 * Math.sqrt(largest > 0 ? p.volume_m3 / largest : 0); // area ~ volume
        point(geometry.coordinates, FLOOD_NODE, size, p, p.code);
        sizes.push({ code: p.code, size });
      } else if (p.role === "flood_extent") {
        const polygons = geometry.type === "MultiPolygon" ? geometry.coordinates : [geometry.coordinates];
        for (const polygon of polygons) {
          kit.draw({
            properties: p,
            polygon: {
              hierarchy: new Cesium.PolygonHierarchy(
                Cesium.Cartesian3.fromDegreesArray(polygon[0].flatMap(([x, y]) => [x, y])),
                polygon.slice(1).map((hole) => new Cesium.PolygonHierarchy(Cesium.Cartesian3.fromDegreesArray(hole.flatMap(([x, y]) => [x, y])))),
              ),
              material: FLOOD_EXTENT.withAlpha(0.55),
              classificationType: Cesium.ClassificationType.TERRAIN,
            },
          });
        }
      }
    }
    kit.legend("flood", [
      [FLOOD_NODE.toCssColorString(), span("flood.legend.nodes", { max: window.i18n.number(Math.round(largest)) })],
      [FLOOD_EXTENT.withAlpha(0.55).toCssColorString(), "flood.legend.extent"],
    ]);
    cim.renderUntilBuilt();
    return { largest, sizes };
  }

  async function runFlood(request) {
    const body = { ...request, geojson_crs: "EPSG:4326" };
    cim.lastFlood = null;
    kit.hint("flood.computing");
    try {
      const answer = await kit.postJson(endpoints.flood, body);
      kit.clearDrawn();
      const drawn = drawFlood(answer);
      shown = true;
      const totals = answer.totals;
      cim.showProperties(["flood.title", { count: totals.flooded_node_count }], [
        ["flood.section", {
          "flood.rain": span(`flood.rainKind.${answer.rain}`),
          "flood.stormTotal": answer.storm ? answer.storm.total_mm : undefined,
          "flood.floodedNodes": totals.flooded_node_count,
          "flood.floodVolume": totals.flood_volume_m3,
          "flood.outfallVolume": totals.outfall_volume_m3,
          "flood.surcharged": totals.surcharged_conduit_count,
          "flood.runoffError": totals.runoff_continuity_error_percent,
          "flood.routingError": totals.routing_continuity_error_percent,
        }],
      ]);
      const { number } = window.i18n;
      document.getElementById("properties-extra").replaceChildren(
        kit.downloads("flood", endpoints.flood, "POST", { ...request, geojson: false }),
        kit.heading("flood.nodes"),
        kit.dataTable("flood-nodes", ["code", "volume", "hours", "depth", "area"].map((c) => `flood.col.${c}`),
          answer.flooded_nodes.slice(0, 200).map((n) => [n.code, number(n.volume_m3), number(n.hours_flooded), number(n.max_depth_m),
            n.extent ? number(n.extent.area_m2) : null])),
        kit.note("flood.note"),
      );
      if (endpoints.floodHazards && answer.flooded_nodes.some((n) => n.extent)) {
        document.getElementById("properties-extra").append(saveHazardsBox(request, answer));
      }
      kit.hint(totals.flooded_node_count ? "flood.done" : "flood.nothing", { count: totals.flooded_node_count });
      cim.lastFlood = { request: body, answer, drawn };
    } catch (error) {
      kit.failed("flood.failed", error);
    }
  }

  // ---- a flood saved as hazard zones (kind flood) for shelter plans -------------------------
  function saveHazardsBox(request, answer) {
    // the flood's request again with a dataset name: the server reruns it and stores the extents
    const box = document.createElement("div");
    box.id = "flood-hazards";
    box.className = "tool-options";
    const name = document.createElement("input");
    Object.assign(name, { type: "text", id: "flood-hazard-name", maxLength: 200 });
    const storm = answer.storm;
    const rain = storm ? window.i18n.t("flood.hazardStorm", { period: storm.return_period_a, minutes: storm.duration_min })
      : window.i18n.t("flood.rainKind.model");
    name.value = window.i18n.t("flood.hazardName", { id: answer.dataset_id, rain });
    name.style.width = "100%";
    const label = document.createElement("label");
    label.append(span("flood.hazardNameLabel"), name);
    const save = document.createElement("button");
    save.id = "flood-save-hazards";
    window.i18n.set(save, "flood.saveHazards");
    save.addEventListener("click", () => saveHazards(request, name.value.trim()));
    box.append(label, save);
    return box;
  }

  async function saveHazards(request, name) {
    if (!name) {
      kit.hint("flood.hazardNameMissing", undefined, true);
      return;
    }
    cim.lastFloodHazards = null;
    kit.hint("flood.savingHazards");
    try {
      const answer = await kit.postJson(endpoints.floodHazards, { ...request, name, geojson: false });
      kit.hint(answer.created ? "flood.savedHazards" : "flood.savedBefore", { id: answer.dataset.id, count: answer.zones.length });
      const collections = cim.config.endpoints.collections;
      // the hazard layer again, with the new zones (the layer list gets it if it had none)
      if (collections) await cim.showPlanLayer("hazards", await kit.getJson(`${collections}/hazard_zones/items?limit=10000`));
      cim.lastFloodHazards = answer;
    } catch (error) {
      kit.failed("flood.saveFailed", error);
    }
  }

  async function install() {
    [endpoints.shutdown, endpoints.flood, endpoints.floodHazards] = await Promise.all([
      kit.endpoint("shutdown", "POST", "/analysis/pipes/shutdown"),
      kit.endpoint("flood", "POST", "/analysis/drainage/flood"),
      kit.endpoint("floodHazards", "POST", "/analysis/drainage/flood/hazards"),
    ]);
    if (endpoints.shutdown && kit.hasPipes()) kit.addTool("shutdown", "tool.shutdown", shutdown, shutdownOptions());
    const pipes = cim.datasets.some((d) => d.kind === "pipes"); // a drainage network is one
    if (endpoints.flood && pipes && cim.config.endpoints.datasets) kit.addTool("flood", "tool.flood", flood, floodOptions());
    cim.simulationToolsReady = true;
  }

  let shown = false; // a shutdown or flood is drawn: the next stop of a tool clears it
  kit.onStop.push(() => {
    if (!shown) return;
    shown = false;
    kit.legend("shutdown", null);
    kit.legend("flood", null);
    kit.clearDrawn();
  });
  // For scripts and the browser tests: the simulations without the clicks.
  Object.assign(cim.tools, { shutdown: runShutdown, flood: runFlood, saveFloodHazards: saveHazards, shutdownColours: SHUTDOWN_COLOURS });

  const start = () => install().catch((error) => console.warn(`cim viewer: simulations: ${error.message}`));
  if (cim.ready) start();
  else document.addEventListener("cim-ready", start, { once: true });
})();
