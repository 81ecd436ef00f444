// cim viewer excavation impact: click the corners of a planned cut on the ground (double-click
// or Finish closes it), give its depth and margin; POST /analysis/pipes/excavation answers with
// every pipe in or near the cut - struck, under or near - its cover and clearances, and the
// owners to notify. The pipes are coloured by status in the tiles and drawn through the ground.
"use strict";

(function excavationTool() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { t, span } = window.i18n;
  // statuses of the API; their labels are excavation.status.* and excavation.legend.*
  const EXCAVATION_COLOURS = { struck: "#ff2020", under: "#ff9f1c", near: "#ffe14d" };
  const CUT_COLOUR = Cesium.Color.fromCssColorString("#ff7a00");
  let finishCut = null;

  function excavationOptions() {
    const box = document.createElement("div");
    box.id = "excavation-options";
    const finish = document.createElement("button");
    finish.id = "excavation-finish";
    window.i18n.set(finish, "excavation.finish");
    finish.addEventListener("click", () => finishCut && finishCut());
    box.append(
      kit.numberInput("excavation-depth", "excavation.depth", 2, { min: "0.1", step: "0.1" }),
      kit.numberInput("excavation-margin", "excavation.margin", 1, { min: "0", step: "0.5" }),
      finish,
    );
    return box;
  }

  function drawCut(corners, closed) {
    kit.clearDrawn();
    const ring = closed ? [...corners, corners[0]] : corners;
    if (closed) {
      kit.draw({
        polygon: {
          hierarchy: Cesium.Cartesian3.fromDegreesArray(corners.flat()),
          material: CUT_COLOUR.withAlpha(0.3),
          classificationType: Cesium.ClassificationType.TERRAIN,
        },
      });
    }
    if (ring.length >= 2) {
      kit.draw({
        polyline: {
          positions: Cesium.Cartesian3.fromDegreesArray(ring.flat()),
          width: 3,
          material: CUT_COLOUR,
          clampToGround: true,
        },
      });
    }
    for (const [lon, lat] of corners) {
      kit.draw({
        position: Cesium.Cartesian3.fromDegrees(lon, lat),
        point: {
          pixelSize: 7,
          color: CUT_COLOUR,
          heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
        },
      });
    }
    cim.renderUntilBuilt(); // ground lines are built by workers over several frames
  }

  function drawAffected(geojson) {
    // Tubes a decimetre wide are a pixel or two from a street's height and lie under the
    // ground: the affected pipes are also drawn as wide lines that show through it.
    for (const feature of (geojson && geojson.features) || []) {
      const colour = EXCAVATION_COLOURS[feature.properties.role];
      const geometry = feature.geometry;
      if (!colour || !geometry) continue;
      const lines = geometry.type === "MultiLineString" ? geometry.coordinates : [geometry.coordinates];
      const material = Cesium.Color.fromCssColorString(colour);
      for (const line of lines) {
        kit.draw({
          polyline: {
            positions: Cesium.Cartesian3.fromDegreesArrayHeights(line.flatMap(([x, y, z]) => [x, y, z ?? 0])),
            width: 4,
            arcType: Cesium.ArcType.NONE,
            material,
            depthFailMaterial: material.withAlpha(0.75),
          },
        });
      }
    }
    cim.renderUntilBuilt();
  }

  function excavation() {
    kit.clearDrawn();
    const corners = []; // {lonlat, screen}
    kit.hint("excavation.hint");
    cim.toolHandler = new Cesium.ScreenSpaceEventHandler(cim.viewer.scene.canvas);
    cim.toolHandler.setInputAction((click) => {
      const last = corners[corners.length - 1];
      // the second click of a double-click lands on the corner just added
      if (last && Cesium.Cartesian2.distance(last.screen, click.position) < 4) return;
      const point = kit.groundPoint(click.position);
      if (!point) return;
      corners.push({ lonlat: point, screen: Cesium.Cartesian2.clone(click.position) });
      drawCut(corners.map((c) => c.lonlat), false);
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
    cim.toolHandler.setInputAction(() => finishCut && finishCut(), Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    finishCut = async () => {
      if (corners.length < 3) {
        kit.hint("excavation.tooFewCorners", undefined, true);
        return;
      }
      const depth = Number(document.getElementById("excavation-depth").value);
      const margin = Number(document.getElementById("excavation-margin").value);
      if (!(depth > 0) || !(margin >= 0)) {
        kit.hint("excavation.badNumbers", undefined, true);
        return;
      }
      finishCut = null;
      kit.stop();
      await runExcavation(corners.map((c) => c.lonlat), depth, margin);
    };
  }

  async function runExcavation(corners, depthM, marginM) {
    const ring = [...corners, corners[0]];
    const body = {
      polygon: { type: "Polygon", coordinates: [ring] },
      depth_m: depthM,
      margin_m: marginM,
      crs: "EPSG:4326",
      geojson_crs: "EPSG:4326",
    };
    cim.lastExcavation = null;
    drawCut(corners, true);
    kit.hint("excavation.computing");
    try {
      const answer = await kit.postJson(cim.config.endpoints.excavation, body);
      const order = { struck: 0, under: 1, near: 2 };
      const pipes = [...answer.pipes].sort((a, b) => order[a.status] - order[b.status] || String(a.code).localeCompare(String(b.code)));
      kit.highlightCodes(Object.fromEntries(pipes.map((p) => [p.code, EXCAVATION_COLOURS[p.status]])));
      kit.legend("pipes", Object.keys(EXCAVATION_COLOURS).map((status) => [EXCAVATION_COLOURS[status], `excavation.legend.${status}`]));
      cim.showProperties(["excavation.title", { count: answer.pipe_count, struck: answer.struck_count }], [
        ["excavation.cut", {
          "excavation.area": answer.cut_area_m2,
          "excavation.cutDepth": answer.depth_m,
          "excavation.cutMargin": answer.margin_m,
          "excavation.ground": answer.ground_source,
        }],
      ]);
      const owner = (name) => name ?? span("properties.unknown");
      document.getElementById("properties-extra").replaceChildren(
        kit.downloads("excavation", cim.config.endpoints.excavation, "POST", body),
        excavationChart(pipes, answer.depth_m),
        kit.heading("excavation.affected"),
        kit.dataTable("excavation-pipes", ["code", "status", "class", "section", "cover", "h", "v", "owner"].map((c) => `excavation.col.${c}`),
          pipes.map((p) => [p.code, kit.swatchText(EXCAVATION_COLOURS[p.status], span(`excavation.status.${p.status}`)), p.utility,
            p.section, p.min_cover_m, p.horizontal_clearance_m, p.vertical_clearance_m, owner(p.owner)])),
        kit.note("excavation.note"),
        kit.heading("excavation.notify"),
        kit.dataTable("excavation-notify", ["class", "owner", "pipes", "struck"].map((c) => `excavation.col.${c}`),
          answer.notify.map((n) => [notifyClass(n), owner(n.owner), n.pipes, n.struck])),
      );
      drawAffected(answer.geojson);
      kit.hint(answer.pipe_count ? "excavation.done" : "excavation.nothing");
      cim.lastExcavation = { request: body, answer };
    } catch (error) {
      kit.failed("excavation.failed", error);
    }
  }

  function notifyClass(notice) {
    // code and CJJ 61 name in the page's language (the API's name when the class is not known)
    const label = document.createElement("span");
    label.append(`${notice.utility} `, kit.className(notice.utility) || notice.utility_name || "");
    return kit.swatchText(notice.colour, label);
  }

  function excavationChart(pipes, depthM) {
    // Cover of each pipe (ground down to its top) against the cut floor: a bar reaching below
    // the dashed line is a pipe under the floor; one ending above it is in the digger's way.
    const svgNs = "http://www.w3.org/2000/svg";
    const shown = pipes.filter((p) => p.min_cover_m !== null && p.min_cover_m !== undefined);
    const svg = document.createElementNS(svgNs, "svg");
    svg.id = "excavation-chart";
    const width = 300;
    const height = 130;
    const top = 14;
    const bottom = height - 18;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    const add = (name, attributes, text) => {
      const node = document.createElementNS(svgNs, name);
      for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
      // text: data, or [key, params] of the string table
      if (Array.isArray(text)) window.i18n.set(node, text[0], text[1]);
      else if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    const deepest = Math.max(depthM, ...shown.map((p) => p.min_cover_m)) * 1.15 || 1;
    const y = (depth) => top + (bottom - top) * (depth / deepest);
    const left = 34;
    const band = shown.length ? Math.min(30, (width - left - 6) / shown.length) : 0;
    add("text", { x: 2, y: 10, "font-size": 9, fill: "#333" }, ["excavation.chart.title"]);
    add("line", { x1: left, y1: top, x2: width - 4, y2: top, stroke: "#6b4f2a", "stroke-width": 2 });
    add("text", { x: 2, y: top + 3, "font-size": 8, fill: "#333" }, ["excavation.chart.ground"]);
    shown.forEach((p, i) => {
      const x = left + i * band + band * 0.15;
      const bar = add("rect", {
        x, y: top, width: band * 0.7, height: Math.max(1, y(p.min_cover_m) - top),
        fill: EXCAVATION_COLOURS[p.status], stroke: "#333", "stroke-width": 0.5,
      });
      const title = document.createElementNS(svgNs, "title");
      title.textContent = t("excavation.chart.bar", {
        code: p.code, cover: window.i18n.number(p.min_cover_m), status: t(`excavation.status.${p.status}`),
      });
      bar.append(title);
      if (shown.length <= 12) {
        add("text", { x: x + band * 0.35, y: height - 4, "font-size": 7, "text-anchor": "middle", fill: "#333" }, String(p.code).slice(0, 8));
      }
    });
    add("line", { x1: left, y1: y(depthM), x2: width - 4, y2: y(depthM), stroke: "#d00", "stroke-dasharray": "4 3" });
    add("text", { x: 2, y: y(depthM) + 3, "font-size": 8, fill: "#d00" }, ["excavation.chart.floor", { depth: window.i18n.number(depthM) }]);
    return svg;
  }

  function install() {
    if (cim.config.endpoints.excavation && kit.hasPipes()) {
      kit.addTool("excavation", "tool.excavation", excavation, excavationOptions());
    }
  }

  kit.onStop.push(() => {
    finishCut = null;
  });
  // For scripts and the browser tests: the analysis without the clicks, and its colours.
  Object.assign(cim.tools, { excavation: runExcavation, excavationColours: EXCAVATION_COLOURS });

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
