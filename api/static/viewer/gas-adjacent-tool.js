// cim viewer gas adjacent spaces (燃气相邻地下空间, issue 20): a click near a gas pipe, or every
// gas pipe in view, asks POST /analysis/gas/adjacent-spaces for the underground spaces of other
// classes next to it - wells, chambers, utility tunnels, basements - drawn in 3D: the gas pipes
// in their CJJ 61 colour, each space at its bottom height coloured by its risk score, and a
// dashed line from the space to the pipe labelled with the horizontal distance. The ranked
// spaces go in the panel and its download buttons. Gas is a sensitive class: it needs a key.
"use strict";

(function gasAdjacentTool() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { span } = window.i18n;
  const RISK_LOW = Cesium.Color.fromCssColorString("#ffe14d"); // the lowest score: 0
  const RISK_HIGH = Cesium.Color.fromCssColorString("#d7191c"); // the highest of the answer
  const DISTANCE = Cesium.Color.WHITE;
  const WELL_RADIUS = 0.6; // m: a well drawn as a cylinder standing on its bottom
  const WELL_HEIGHT = 1.5;
  // labelled by gas.spaceType.* and gas.relation.*
  const SPACE_TYPES = ["power_well", "utility_tunnel", "telecom_well", "drainage_well", "heat_well", "water_well", "other_well", "basement"];
  const RELATIONS = ["above", "level", "below", "unknown"];
  const source = new Cesium.CustomDataSource("gas-adjacent");
  let endpoint = null;
  let shown = false;

  const riskColour = (risk, largest) => Cesium.Color.lerp(RISK_LOW, RISK_HIGH, largest > 0 ? Math.min(1, risk / largest) : 1, new Cesium.Color());

  function gasColour() {
    const gas = (cim.config.utilityClasses || []).find((c) => c.code === "RQ");
    return Cesium.Color.fromCssColorString(gas ? gas.colour : "#ff00ff");
  }

  const heights = (coordinates) => Cesium.Cartesian3.fromDegreesArrayHeights(coordinates.flatMap(([x, y, z]) => [x, y, z ?? 0]));

  function options() {
    const box = document.createElement("div");
    box.id = "gas-options";
    const inView = document.createElement("button");
    inView.id = "gas-in-view";
    window.i18n.set(inView, "gas.inView");
    inView.addEventListener("click", () => {
      const rectangle = cim.viewer.camera.computeViewRectangle();
      if (!rectangle) {
        kit.hint("gas.noView", undefined, true);
        return;
      }
      const bbox = [rectangle.west, rectangle.south, rectangle.east, rectangle.north].map(Cesium.Math.toDegrees);
      run({ bbox });
    });
    box.append(kit.numberInput("gas-radius", "gas.radius", 5, { min: "0.5", max: "50", step: "0.5" }), inView);
    return box;
  }

  function start() {
    kit.hint("gas.hint");
    cim.toolHandler = new Cesium.ScreenSpaceEventHandler(cim.viewer.scene.canvas);
    cim.toolHandler.setInputAction((click) => {
      // a drawn space describes itself; elsewhere the gas pipe nearest the click is analysed
      const hit = cim.viewer.scene.drillPick(click.position, 4).find((p) => p.id && p.id.cimDescribe);
      if (hit) {
        hit.id.cimDescribe();
        return;
      }
      const point = kit.groundPoint(click.position);
      if (point) run({ point });
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
  }

  function describeSpace(p) {
    cim.showProperties(p.code, [["gas.spaceSection", {
      "gas.col.rank": p.rank,
      "gas.col.type": window.i18n.has(`gas.spaceType.${p.space_type}`) ? span(`gas.spaceType.${p.space_type}`) : p.space_type,
      "gas.col.distance": p.distance_m,
      "gas.col.relation": span(`gas.relation.${p.vertical_relation}`),
      "gas.col.gap": p.vertical_gap_m ?? undefined,
      "gas.col.risk": p.risk,
    }]]);
    cim.lastGasSpaceShown = p;
  }

  function drawSpace(feature, colour) {
    const p = feature.properties;
    const geometry = feature.geometry;
    const common = { name: p.code, properties: p };
    if (geometry.type === "Point") {
      const [x, y, z] = geometry.coordinates;
      const entity = source.entities.add({
        ...common,
        position: Cesium.Cartesian3.fromDegrees(x, y, (z ?? 0) + WELL_HEIGHT / 2),
        cylinder: { length: WELL_HEIGHT, topRadius: WELL_RADIUS, bottomRadius: WELL_RADIUS, material: colour.withAlpha(0.85) },
        point: { pixelSize: 9, color: colour, outlineColor: Cesium.Color.BLACK, outlineWidth: 1, disableDepthTestDistance: Number.POSITIVE_INFINITY },
      });
      return [entity];
    }
    if (geometry.type === "LineString" || geometry.type === "MultiLineString") {
      const lines = geometry.type === "LineString" ? [geometry.coordinates] : geometry.coordinates;
      return lines.map((line) => source.entities.add({
        ...common,
        polyline: { positions: heights(line), width: 10, arcType: Cesium.ArcType.NONE, material: colour, depthFailMaterial: colour.withAlpha(0.6) },
      }));
    }
    const polygons = geometry.type === "MultiPolygon" ? geometry.coordinates : [geometry.coordinates];
    return polygons.map((polygon) => source.entities.add({
      ...common,
      polygon: {
        hierarchy: new Cesium.PolygonHierarchy(heights(polygon[0]), polygon.slice(1).map((hole) => new Cesium.PolygonHierarchy(heights(hole)))),
        perPositionHeight: true,
        material: colour.withAlpha(0.55),
        outline: true,
        outlineColor: colour,
      },
    }));
  }

  function drawDistance(feature) {
    const p = feature.properties;
    const [a, b] = [feature.geometry.coordinates[0], feature.geometry.coordinates.at(-1)];
    const middle = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, ((a[2] ?? 0) + (b[2] ?? 0)) / 2];
    return source.entities.add({
      name: p.code,
      properties: p,
      position: Cesium.Cartesian3.fromDegrees(...middle),
      polyline: {
        positions: heights(feature.geometry.coordinates),
        width: 2,
        arcType: Cesium.ArcType.NONE,
        material: new Cesium.PolylineDashMaterialProperty({ color: DISTANCE }),
        depthFailMaterial: new Cesium.PolylineDashMaterialProperty({ color: DISTANCE.withAlpha(0.6) }),
      },
      label: {
        text: window.i18n.t("gas.distanceLabel", { distance: window.i18n.number(p.distance_m) }),
        font: "11px sans-serif",
        fillColor: Cesium.Color.WHITE,
        showBackground: true,
        backgroundColor: Cesium.Color.BLACK.withAlpha(0.55),
        pixelOffset: new Cesium.Cartesian2(0, -14), // above the space's own point
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
        distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, 800),
      },
    });
  }

  function draw(answer) {
    source.entities.removeAll();
    const features = (answer.geojson && answer.geojson.features) || [];
    const largest = Math.max(0, ...answer.spaces.map((s) => s.risk.score));
    const drawn = { pipes: 0, spaces: 0, distances: 0, colours: {} };
    for (const feature of features) {
      const p = feature.properties;
      if (!feature.geometry) continue;
      if (p.role === "gas_pipe") {
        const lines = feature.geometry.type === "MultiLineString" ? feature.geometry.coordinates : [feature.geometry.coordinates];
        for (const line of lines) {
          source.entities.add({
            name: p.code,
            properties: p,
            polyline: { positions: heights(line), width: 6, arcType: Cesium.ArcType.NONE, material: gasColour(), depthFailMaterial: gasColour().withAlpha(0.6) },
          });
        }
        drawn.pipes += 1;
      } else if (p.role === "space") {
        const colour = riskColour(p.risk, largest);
        for (const entity of drawSpace(feature, colour)) entity.cimDescribe = () => describeSpace(p);
        drawn.colours[p.code] = colour.toCssHexString();
        drawn.spaces += 1;
      } else if (p.role === "distance") {
        drawDistance(feature).cimDescribe = () => describeSpace(p);
        drawn.distances += 1;
      }
    }
    const ramp = `linear-gradient(to right, ${RISK_LOW.toCssColorString()}, ${RISK_HIGH.toCssColorString()})`;
    kit.legend("gas", [
      [ramp, span("gas.legend.risk", { max: window.i18n.number(Math.round(largest * 100) / 100) })],
      [gasColour().toCssColorString(), "gas.legend.pipe"],
      ["repeating-linear-gradient(to right, #fff 0 4px, transparent 4px 8px)", "gas.legend.distance"],
    ]);
    cim.renderUntilBuilt();
    return { largest, ...drawn };
  }

  async function run(scope) {
    const radius = Number(document.getElementById("gas-radius").value);
    if (!(radius > 0 && radius <= 50)) {
      kit.hint("gas.badRadius", undefined, true);
      return;
    }
    const request = { ...scope, radius_m: radius, crs: "EPSG:4326" };
    const body = { ...request, geojson_crs: "EPSG:4326" };
    cim.lastGasAdjacent = null;
    kit.hint("gas.computing");
    try {
      const answer = await kit.postJson(endpoint, body);
      const drawn = draw(answer);
      shown = true;
      cim.describable = true;
      cim.showProperties(["gas.title", { count: answer.space_count }], [["gas.section", {
        "gas.gasPipes": answer.gas_pipe_count,
        "gas.gasLength": answer.gas_length_m,
        "gas.spaces": answer.space_count,
        "gas.radiusRow": answer.radius_m,
        "gas.noBasementData": answer.buildings_without_basement_data,
      }]]);
      const { number } = window.i18n;
      document.getElementById("properties-extra").replaceChildren(
        kit.downloads("gas-adjacent", endpoint, "POST", request),
        kit.heading("gas.spacesTable"),
        kit.dataTable("gas-spaces", ["rank", "code", "type", "distance", "relation", "risk"].map((c) => `gas.col.${c}`),
          answer.spaces.slice(0, 200).map((s) => [s.rank, s.code,
            window.i18n.has(`gas.spaceType.${s.space_type}`) ? span(`gas.spaceType.${s.space_type}`) : s.space_type,
            number(s.distance_m), span(`gas.relation.${s.vertical_relation}`),
            kit.swatchText(drawn.colours[s.code] || "transparent", number(Math.round(s.risk.score * 1000) / 1000))])),
        kit.note("gas.note"),
      );
      kit.hint(answer.space_count ? "gas.done" : "gas.nothing", { count: answer.space_count, pipes: answer.gas_pipe_count });
      cim.lastGasAdjacent = { request: body, answer, drawn };
    } catch (error) {
      kit.failed("gas.failed", error);
    }
  }

  async function install() {
    endpoint = await kit.endpoint("gasAdjacent", "POST", "/analysis/gas/adjacent-spaces");
    if (!endpoint) return;
    await cim.viewer.dataSources.add(source);
    // offered where there are pipe datasets; gas ones are listed to a keyed caller only, so a
    // key entered later may bring the tool
    let offered = false;
    const offer = async () => {
      if (offered) return;
      const pipes = cim.datasets.some((d) => d.kind === "pipes")
        || (await kit.getJson("datasets.json").catch(() => [])).some((d) => d.kind === "pipes");
      if (offered || !pipes) return;
      offered = true;
      kit.addTool("gas-adjacent", "tool.gasAdjacent", start, options());
    };
    await offer();
    document.getElementById("api-key").addEventListener("change", offer);
    cim.gasToolReady = true;
  }

  kit.onStop.push(() => {
    if (!shown) return;
    shown = false;
    cim.describable = false;
    source.entities.removeAll();
    kit.legend("gas", null);
    cim.viewer.scene.requestRender();
  });
  // For scripts and the browser tests: the analysis without the clicks, and what it labels.
  Object.assign(cim.tools, { gasAdjacent: run, gasSpaceTypes: SPACE_TYPES, gasRelations: RELATIONS });

  const begin = () => install().catch((error) => console.warn(`cim viewer: gas adjacent spaces: ${error.message}`));
  if (cim.ready) begin();
  else document.addEventListener("cim-ready", begin, { once: true });
})();
