// cim viewer: CesiumJS globe with the city's terrain, 3D Tiles (buildings, pipes) and OGC API
// layers. Everything comes from this server: no ion token, no online imagery or terrain.
// Layers that do not exist yet are simply not offered (see /viewer/config.json).
"use strict";

const cim = (window.cim = {
  viewer: null,
  config: null,
  ready: false,
  firstFrameMs: null,
  tilesets: {}, // layer -> {tileset, loaded, tileLoads, failures}
  geojson: {}, // layer -> GeoJsonDataSource
  terrain: { url: null, ready: false, error: null },
  errors: [], // layer failures, shown in the status line (never thrown)
  hiddenClasses: new Set(),
  datasets: [],
  utilityProperty: null,
  selected: null,
  onPick: null, // set by tools.js while a tool waits for a click
});

const { t } = window.i18n; // the string tables (i18n.js): no UI text lives in this file

// OGC API collections shown as GeoJSON, with the first collection id that exists; each is
// labelled by layer.<key> of the string table.
const FEATURE_LAYERS = [
  { key: "hazards", ids: ["hazard_zones", "hazards"], style: "hazard" },
  // hundreds of draped polygons: off until asked for, so the first view stays quick
  { key: "population", ids: ["population_units", "population"], style: "population", hidden: true },
  { key: "shelters", ids: ["shelters"], style: "shelter" },
  // thousands of draped lines: off until asked for (plans along roads use them, not the view)
  { key: "roads", ids: ["road_segments"], style: "road", hidden: true },
  { key: "shelter_zones", ids: ["shelter_zones"], style: "zone" },
  // no collection: shown by the shelter-plan tool from /analysis/shelters/plans/{id}/uncovered
  { key: "uncovered_units", ids: [], style: "uncovered" },
];
// Units with residents no shelter can take: blue, far from every zone colour (green → red).
const UNCOVERED_COLOUR = "#2f7bff";
const UTILITY_PROPERTIES = ["utility", "utility_class", "utility_code", "class_code"];
function status(key, params, isError = false) {
  const el = document.getElementById("status");
  window.i18n.set(el, key, params);
  el.classList.toggle("error", isError);
}

// The label of a layer, a dataset kind or a property key: its entry in the string table
// (prefix.name) when there is one, else the name as it is (a layer or key we do not know).
function labelled(element, prefix, name) {
  if (window.i18n.has(`${prefix}.${name}`)) return window.i18n.set(element, `${prefix}.${name}`);
  element.textContent = name;
  return element;
}
const layerLabel = (name) => labelled(document.createElement("span"), "layer", name);
cim.labelled = labelled;

function fail(layer, error) {
  // A broken layer is reported in the panel and skipped; the rest of the city still shows.
  const message = `${layer}: ${error && error.message ? error.message : error}`;
  cim.errors.push(message);
  console.warn(`cim viewer: ${message}`);
  const failed = [...new Set(cim.errors.map((e) => e.split(":")[0]))];
  status("status.failed", { layers: failed.join(", ") }, true);
  document.getElementById("status").title = cim.errors.join("\n");
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(t("error.http", { url, status: response.status }));
  return response.json();
}

function slot(listId) {
  // a list entry made now and filled when its layer is ready, so the order stays fixed
  const li = document.createElement("li");
  li.hidden = true;
  document.getElementById(listId).append(li);
  return li;
}

function addToggle(listId, label, checked, onChange, extra, li = document.createElement("li")) {
  li.hidden = false;
  const input = document.createElement("input");
  input.type = "checkbox";
  input.checked = checked;
  input.addEventListener("change", () => onChange(input.checked));
  const text = document.createElement("label");
  text.append(input, extra || "", label);
  li.append(text);
  if (!li.parentElement) document.getElementById(listId).append(li); // a slot keeps its place
  return li;
}

function swatch(colour) {
  const span = document.createElement("span");
  span.className = "swatch";
  span.style.background = colour;
  return span;
}

function createViewer() {
  const imagery = Cesium.TileMapServiceImageryProvider.fromUrl(
    Cesium.buildModuleUrl("Assets/Textures/NaturalEarthII"),
  );
  const viewer = new Cesium.Viewer("cesium", {
    baseLayer: Cesium.ImageryLayer.fromProviderAsync(imagery),
    baseLayerPicker: false,
    geocoder: false,
    homeButton: false,
    sceneModePicker: false,
    navigationHelpButton: false,
    animation: false,
    timeline: false,
    fullscreenButton: false,
    infoBox: false,
    selectionIndicator: false,
    requestRenderMode: true, // render on change only: an idle viewer costs no CPU
    maximumRenderTimeChange: Infinity,
    // Frame cost matters on laptops without a GPU (and software WebGL): no 4x MSAA, no
    // order-independent translucency passes - measured ~2x cheaper frames in Chromium.
    msaaSamples: 1,
    orderIndependentTranslucency: false,
  });
  viewer.scene.globe.depthTestAgainstTerrain = true;
  // No fly-to-and-track on double-click: the excavation tool closes its polygon with one.
  viewer.screenSpaceEventHandler.removeInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
  // Cheaper frames (software WebGL in CI, modest laptops): no FXAA pass, no ground atmosphere.
  viewer.scene.postProcessStages.fxaa.enabled = false;
  viewer.scene.globe.showGroundAtmosphere = false;
  // Fewer, coarser globe tiles and no ancestor preloading: the DEM is ~28 m per pixel, so
  // a 4-pixel error is still finer than the data, and the view settles in fewer frames.
  viewer.scene.globe.maximumScreenSpaceError = 4;
  viewer.scene.globe.preloadAncestors = false;
  // A plain sky: the atmosphere pass cost a quarter of each frame in software WebGL.
  viewer.scene.skyAtmosphere.show = false;
  viewer.scene.skyBox.show = false;
  viewer.scene.backgroundColor = Cesium.Color.fromCssColorString("#b9cfe0");
  viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#3b4a3f");
  viewer.scene.postRender.addEventListener(function firstFrame() {
    cim.firstFrameMs = performance.now();
    viewer.scene.postRender.removeEventListener(firstFrame);
  });
  return viewer;
}

async function addTerrain(viewer, url, place) {
  cim.terrain.url = url;
  try {
    viewer.terrainProvider = await Cesium.CesiumTerrainProvider.fromUrl(url, {
      requestVertexNormals: true,
    });
    cim.terrain.ready = true;
    addToggle("layers", window.i18n.span("layer.terrain"), true, (on) => {
      viewer.terrainProvider = on
        ? cim.terrain.provider
        : new Cesium.EllipsoidTerrainProvider();
    }, undefined, place);
    cim.terrain.provider = viewer.terrainProvider;
  } catch (error) {
    cim.terrain.error = String(error);
    fail(t("layer.terrain"), error);
  }
}

async function addTileset(viewer, layer, url, place) {
  const entry = { tileset: null, loaded: false, tileLoads: 0, failures: 0 };
  cim.tilesets[layer] = entry;
  try {
    const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { maximumScreenSpaceError: 8 });
    entry.tileset = tileset;
    tileset.tileLoad.addEventListener((tile) => {
      entry.tileLoads += 1;
      if (layer === "pipes" && !cim.utilityProperty) detectUtilityProperty(tile.content);
    });
    tileset.tileFailed.addEventListener((error) => {
      entry.failures += 1;
      fail(layerLabel(layer).textContent, error.message || error);
    });
    tileset.allTilesLoaded.addEventListener(() => {
      entry.loaded = true;
    });
    viewer.scene.primitives.add(tileset);
    addToggle("layers", layerLabel(layer), true, (on) => {
      if (layer === "pipes") cim.pipesShown = on;
      tileset.show = on && !(layer === "pipes" && cim.timeTravelActive);
      if (layer === "pipes" && cim.updateOverview) cim.updateOverview();
      viewer.scene.requestRender();
    }, undefined, place);
  } catch (error) {
    fail(layerLabel(layer).textContent, error);
  }
}

function detectUtilityProperty(content) {
  if (!content || content.featuresLength === 0) return;
  const ids = content.getFeature(0).getPropertyIds();
  cim.utilityProperty = UTILITY_PROPERTIES.find((name) => ids.includes(name)) || null;
  applyClassStyle();
}

cim.applyClassStyle = () => applyClassStyle();
function applyClassStyle() {
  if (cim.networkOverview) {
    for (let i = 0; i < cim.networkOverview.length; i += 1) {
      const line = cim.networkOverview.get(i);
      line.show = !cim.hiddenClasses.has(line.utility);
    }
  }
  const entry = cim.tilesets.pipes;
  if (!entry || !entry.tileset || !cim.utilityProperty) return;
  if (cim.hiddenClasses.size === 0) {
    entry.tileset.style = undefined;
  } else {
    const hidden = [...cim.hiddenClasses]
      .map((code) => `\${${cim.utilityProperty}} === '${code}'`)
      .join(" || ");
    entry.tileset.style = new Cesium.Cesium3DTileStyle({ show: `!(${hidden})` });
  }
  cim.viewer.scene.requestRender();
}

function buildLegend(classes) {
  if (!cim.tilesets.pipes) return;
  document.getElementById("legend-section").hidden = false;
  for (const cls of classes) {
    const extra = document.createElement("span");
    extra.append(swatch(cls.colour), " ");
    const code = document.createElement("span");
    code.className = "code";
    code.textContent = cls.code;
    extra.append(code);
    // CJJ 61 names from the config (cim/data/cjj61_classes.yaml): Chinese or English by locale
    const name = document.createElement("span");
    name.append(" ", window.i18n.setName(document.createElement("span"), { en: cls.name, "zh-CN": cls.nameZh }));
    const li = addToggle("legend", name, true, (on) => {
      if (on) cim.hiddenClasses.delete(cls.code);
      else cim.hiddenClasses.add(cls.code);
      applyClassStyle();
    }, extra);
    li.title = [`${cls.code} ${cls.nameZh} ${cls.name}`,
      ...cls.subclasses.map((s) => `  ${s.code} ${s.nameZh} ${s.name}`)].join("\n");
  }
}

function featureStyle(kind, properties) {
  if (kind === "hazard") {
    return { fill: Cesium.Color.fromCssColorString("#e8412c").withAlpha(0.45), outline: Cesium.Color.RED, zIndex: 2 };
  }
  if (kind === "population") {
    // residents per block: the more, the more opaque the violet
    const alpha = Math.min(0.55, 0.08 + Number(properties.population || 0) / 1500);
    return { fill: Cesium.Color.fromCssColorString("#8e7cc3").withAlpha(alpha), outline: Cesium.Color.WHITE, zIndex: 1 };
  }
  if (kind === "zone") {
    const ratio = Number(properties.load_ratio ?? properties.loadRatio ?? 0);
    return { fill: loadRatioColour(ratio).withAlpha(0.45), outline: Cesium.Color.WHITE, zIndex: 3 };
  }
  if (kind === "road") {
    return { fill: Cesium.Color.fromCssColorString("#f5f0e1").withAlpha(0.85), outline: Cesium.Color.WHITE, zIndex: 0 };
  }
  if (kind === "uncovered") {
    // above the zones: a unit split between a shelter and "uncovered" lies in both
    return {
      fill: Cesium.Color.fromCssColorString(UNCOVERED_COLOUR).withAlpha(0.6),
      outline: Cesium.Color.WHITE,
      zIndex: 4,
      name: t("feature.uncovered", { code: properties.code ?? properties.unit_id }),
    };
  }
  return { fill: Cesium.Color.fromCssColorString("#2ecc71"), outline: Cesium.Color.WHITE };
}

function loadRatioColour(ratio) {
  // green (empty) → yellow (half) → red (full or over)
  const t = Math.max(0, Math.min(1, ratio));
  return Cesium.Color.fromHsl((1 - t) * 0.33, 0.85, 0.5);
}
cim.loadRatioColour = loadRatioColour;
cim.uncoveredColour = UNCOVERED_COLOUR;

async function fetchFeatures(collectionId, query = "") {
  const url = `/collections/${collectionId}/items?limit=10000${query}`;
  return getJson(url, { headers: { Accept: "application/geo+json" } });
}

async function addFeatureLayer(viewer, layer, data, place) {
  try {
    // Draped on the terrain (ground primitives): 2D polygons would otherwise sit at height 0.
    const source = await Cesium.GeoJsonDataSource.load(await data, { clampToGround: true });
    for (const entity of source.entities.values) {
      const properties = entity.properties ? entity.properties.getValue(Cesium.JulianDate.now()) : {};
      const style = featureStyle(layer.style, properties || {});
      if (style.name) entity.name = style.name;
      if (entity.polygon) {
        entity.polygon.material = style.fill;
        entity.polygon.outline = false;
        entity.polygon.classificationType = Cesium.ClassificationType.TERRAIN;
        entity.polygon.zIndex = style.zIndex || 0;
      } else if (entity.polyline) {
        entity.polyline.material = style.fill;
        entity.polyline.width = 2;
        entity.polyline.classificationType = Cesium.ClassificationType.TERRAIN;
        entity.polyline.zIndex = style.zIndex || 0;
      } else if (entity.billboard || entity.point) {
        entity.billboard = undefined;
        entity.point = new Cesium.PointGraphics({
          pixelSize: 10,
          color: style.fill,
          outlineColor: style.outline,
          outlineWidth: 2,
          heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
        });
      }
    }
    const previous = cim.geojson[layer.key];
    if (previous) viewer.dataSources.remove(previous, true);
    await viewer.dataSources.add(source);
    cim.geojson[layer.key] = source;
    renderUntilBuilt();
  } catch (error) {
    fail(t(`layer.${layer.key}`), error);
  }
}

cim.renderUntilBuilt = () => renderUntilBuilt();
function renderUntilBuilt() {
  // Entity geometry (polygons on the terrain) is built by web workers over many frames, and
  // request-render mode would stop after the first: render continuously until the data
  // sources report ready for a few frames in a row.
  const scene = cim.viewer.scene;
  if (!scene.requestRenderMode) return;
  scene.requestRenderMode = false;
  let readyFrames = 0;
  const check = () => {
    readyFrames = cim.viewer.dataSourceDisplay.ready ? readyFrames + 1 : 0;
    if (readyFrames >= 5) {
      scene.postRender.removeEventListener(check);
      scene.requestRenderMode = true;
      scene.requestRender();
    }
  };
  scene.postRender.addEventListener(check);
}

function addFeatureToggle(viewer, layer, place) {
  layer.toggle = addToggle("layers", layerLabel(layer.key), !layer.hidden, async (on) => {
    layer.hidden = !on;
    if (on && !cim.geojson[layer.key]) await addFeatureLayer(viewer, layer, fetchFeatures(layer.collection));
    if (cim.geojson[layer.key]) cim.geojson[layer.key].show = on;
    if (on) renderUntilBuilt();
    viewer.scene.requestRender();
  }, undefined, place);
}

cim.addFeatureLayer = (key, query) => {
  const layer = FEATURE_LAYERS.find((l) => l.key === key);
  layer.hidden = false;
  return addFeatureLayer(cim.viewer, layer, fetchFeatures(layer.collection || layer.ids[0], query));
};

// A layer of one plan (its zones, its uncovered units) from an analysis endpoint: replaces the
// layer's data and gets a toggle in the layer list the first time.
cim.showPlanLayer = async (key, data) => {
  const layer = FEATURE_LAYERS.find((l) => l.key === key);
  layer.hidden = false;
  await addFeatureLayer(cim.viewer, layer, data);
  if (!layer.toggle) addFeatureToggle(cim.viewer, layer);
  else layer.toggle.querySelector("input").checked = true;
};

// Tubes a few decimetres wide vanish from a few kilometres away, so the network is also drawn
// as class-coloured lines from the OGC API, shown only beyond OVERVIEW_DISTANCE metres.
const OVERVIEW_DISTANCE = 1500;
const OVERVIEW_MAX_SEGMENTS = 20000;
// Pipes lie a metre or more under the ground, which would hide their lines: lift them above it
// (a few metres cannot be seen from OVERVIEW_DISTANCE away).
const OVERVIEW_LIFT = 4;

async function addNetworkOverview(viewer) {
  const head = await getJson("/collections/pipe_segments/items?limit=1", {
    headers: { Accept: "application/geo+json" },
  });
  const count = head.numberMatched ?? 0;
  if (count === 0 || count > OVERVIEW_MAX_SEGMENTS) return;
  const data = await getJson(
    `/collections/pipe_segments/items?limit=${count}&properties=code,utility`,
    { headers: { Accept: "application/geo+json" } },
  );
  const colours = Object.fromEntries(cim.config.utilityClasses.map((c) => [c.code, c.colour]));
  // A PolylineCollection is built at once (no worker round trip as for entities), so the
  // lines show on the next frame even in request-render mode.
  const source = viewer.scene.primitives.add(new Cesium.PolylineCollection());
  const materials = {};
  for (const feature of data.features) {
    const utility = feature.properties.utility;
    materials[utility] ??= Cesium.Material.fromType("Color", {
      color: Cesium.Color.fromCssColorString(colours[utility] || "#ffffff"),
    });
    const coords = feature.geometry.coordinates;
    const line = source.add({
      positions: Cesium.Cartesian3.fromDegreesArrayHeights(
        coords.flatMap(([x, y, z]) => [x, y, (z || 0) + OVERVIEW_LIFT]),
      ),
      width: 2,
      material: materials[utility],
      id: { layer: "pipes", code: feature.properties.code, utility, segmentId: feature.id },
    });
    line.utility = utility;
  }
  cim.networkOverview = source;
  // Only from high above: close up, the tubes of the pipes tileset take over.
  const update = () => {
    const far = viewer.camera.positionCartographic.height - (cim.groundHeight || 0) > OVERVIEW_DISTANCE;
    // a past instant of the time slider draws its own lines (time-travel.js)
    const wanted = far && cim.pipesShown !== false && !cim.timeTravelActive;
    if (source.show !== wanted) {
      source.show = wanted;
      viewer.scene.requestRender();
    }
  };
  cim.updateOverview = update;
  viewer.camera.percentageChanged = 0.05;
  viewer.camera.changed.addEventListener(update);
  update();
}

async function addFeatureLayers(viewer, endpoints) {
  if (!endpoints.collections) return;
  const listing = await getJson("/collections", { headers: { Accept: "application/json" } });
  const available = new Set((listing.collections || []).map((c) => c.id));
  const work = [];
  if (cim.tilesets.pipes && available.has("pipe_segments")) {
    work.push(addNetworkOverview(viewer).catch((error) => fail(t("layer.overview"), error)));
  }
  for (const layer of FEATURE_LAYERS) {
    layer.collection = layer.ids.find((id) => available.has(id));
    if (!layer.collection) continue;
    const place = slot("layers");
    // hidden layers load when first ticked; the others are fetched side by side
    if (!layer.hidden) work.push(addFeatureLayer(viewer, layer, fetchFeatures(layer.collection)));
    addFeatureToggle(viewer, layer, place);
  }
  await Promise.all(work);
}

async function addDatasets(viewer) {
  const datasets = await getJson("datasets.json");
  const list = document.getElementById("datasets");
  for (const dataset of datasets) {
    if (!dataset.bbox) continue;
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = dataset.name;
    name.title = `${dataset.kind} #${dataset.id}: ${dataset.name}`;
    const kind = document.createElement("span");
    kind.className = "muted";
    labelled(kind, "kind", dataset.kind);
    const button = document.createElement("button");
    button.className = "fly";
    window.i18n.set(button, "panel.flyTo");
    button.addEventListener("click", () => flyToDataset(dataset));
    li.append(kind, name, button);
    list.append(li);
  }
  document.getElementById("datasets-section").hidden = list.children.length === 0;
  return datasets;
}

function datasetSphere(dataset) {
  // Box corners at the lowest and highest stored Z, so raised 3D data is framed too.
  const [west, south, east, north] = dataset.bbox;
  const [low, high] = dataset.heights || [0, 0];
  return Cesium.BoundingSphere.fromPoints([
    Cesium.Cartesian3.fromDegrees(west, south, low),
    Cesium.Cartesian3.fromDegrees(east, north, high),
    Cesium.Cartesian3.fromDegrees(west, north, low),
    Cesium.Cartesian3.fromDegrees(east, south, high),
  ]);
}

function flyToDataset(dataset, duration = 1.5) {
  const sphere = datasetSphere(dataset);
  const range = Math.max(sphere.radius * 2.2, 60);
  cim.viewer.camera.flyToBoundingSphere(sphere, {
    offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-50), range),
    duration,
  });
}
cim.flyToDataset = flyToDataset;

function showCity(duration = 0) {
  const boxes = cim.datasets.filter((d) => d.bbox);
  if (!boxes.length) return;
  const union = boxes.reduce((a, d) => ({
    bbox: [Math.min(a.bbox[0], d.bbox[0]), Math.min(a.bbox[1], d.bbox[1]), Math.max(a.bbox[2], d.bbox[2]), Math.max(a.bbox[3], d.bbox[3])],
    heights: [Math.min(a.heights[0], (d.heights || [0])[0]), Math.max(a.heights[1], (d.heights || [0, 0])[1])],
  }), { bbox: boxes[0].bbox, heights: boxes[0].heights || [0, 0] });
  if (duration > 0) return flyToDataset(union, duration);
  flyToDataset(union, 0);
  // shift the city right of the layer panel
  cim.viewer.camera.moveLeft(datasetSphere(union).radius * 0.3);
  cim.viewer.scene.requestRender();
}
cim.showCity = showCity;

// The picture of the README and the test artifact: the IFC building among the pipes, from
// the south-west, looking down at 30 degrees.
cim.showDemoView = () => {
  const focus = cim.datasets.find((d) => d.kind === "ifc" && d.bbox)
    || cim.datasets.find((d) => d.kind === "pipes" && d.bbox);
  if (!focus) return showCity();
  // Underground mode on, so the pipes below the translucent ground show beside the building.
  cim.setUnderground(true);
  cim.viewer.camera.flyToBoundingSphere(datasetSphere(focus), {
    offset: new Cesium.HeadingPitchRange(Cesium.Math.toRadians(35), Cesium.Math.toRadians(-32), 260),
    duration: 0,
  });
  cim.viewer.scene.requestRender();
};

function setUnderground(viewer, on) {
  const globe = viewer.scene.globe;
  const alpha = Number(document.getElementById("ground-alpha").value);
  globe.translucency.enabled = on;
  globe.translucency.frontFaceAlpha = alpha;
  globe.translucency.backFaceAlpha = alpha;
  // see-through near the camera, opaque towards the horizon: a cut-away, not a ghost world
  globe.translucency.frontFaceAlphaByDistance = new Cesium.NearFarScalar(300, alpha, 4000, 1.0);
  // Below the surface the camera must not bounce back up, and pipes must show through.
  viewer.scene.screenSpaceCameraController.enableCollisionDetection = !on;
  globe.depthTestAgainstTerrain = !on;
  viewer.scene.requestRender();
}
cim.setUnderground = (on) => {
  document.getElementById("underground").checked = on;
  setUnderground(cim.viewer, on);
};

async function main() {
  const config = (cim.config = await getJson("config.json"));
  const viewer = (cim.viewer = createViewer());
  document.getElementById("underground").addEventListener("change", (e) => setUnderground(viewer, e.target.checked));
  document.getElementById("ground-alpha").addEventListener("input", () =>
    setUnderground(viewer, document.getElementById("underground").checked));
  document.getElementById("properties-close").addEventListener("click", () => {
    document.getElementById("properties").hidden = true;
  });
  addToggle("layers", window.i18n.span("layer.baseMap"), true, (on) => {
    viewer.imageryLayers.get(0).show = on;
    viewer.scene.requestRender();
  });
  const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  // A drawing tool (cim.toolHandler) owns the clicks while it is active.
  // An entity a tool drew may describe itself (cimDescribe: the changes view); it wins over
  // the pipe tiles it is drawn on while that tool sets cim.describable.
  handler.setInputAction((click) => {
    if (cim.toolHandler) return;
    const hits = cim.describable ? viewer.scene.drillPick(click.position, 4).filter((p) => p.id && p.id.cimDescribe) : [];
    const drawn = hits.find((p) => p.id.point) || hits[0]; // a node over the lines that meet there
    if (drawn) drawn.id.cimDescribe();
    else cim.pick(click.position);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);

  // Everything is requested side by side; list entries keep a fixed order.
  const terrainPlace = slot("layers");
  const places = config.tilesets.map(() => slot("layers"));
  const datasets = addDatasets(viewer).catch((error) => (fail(t("layer.datasets"), error), []));
  const terrain = config.terrain ? addTerrain(viewer, config.terrain, terrainPlace) : null;
  const tilesets = Promise.all(config.tilesets.map((t, i) => addTileset(viewer, t.layer, t.url, places[i])));
  cim.datasets = await datasets;
  const lows = cim.datasets.filter((d) => d.heights).map((d) => d.heights[0]);
  cim.groundHeight = lows.length ? Math.min(...lows) : 0;
  showCity(0);
  await terrain;
  await tilesets;
  buildLegend(config.utilityClasses);
  await addFeatureLayers(viewer, config.endpoints).catch((error) => fail(t("layer.ogc"), error));
  cim.ready = true;
  cim.readyMs = performance.now();
  if (!cim.errors.length) {
    const count = Object.keys(cim.tilesets).length + Object.keys(cim.geojson).length + (cim.terrain.ready ? 1 : 0);
    status(count ? "status.layers" : "status.empty", { count });
  }
  document.dispatchEvent(new Event("cim-ready"));
  viewer.scene.requestRender();
}

window.i18n.ready.then(main).catch((error) => fail(t("layer.viewer"), error));
