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
  utilityProperty: null,
  selected: null,
  onPick: null, // set by tools.js while a tool waits for a click
});

// OGC API collections shown as GeoJSON, with the first collection id that exists.
const FEATURE_LAYERS = [
  { key: "hazards", label: "Hazard zones", ids: ["hazard_zones", "hazards"], style: "hazard" },
  { key: "population", label: "Population", ids: ["population_units", "population"], style: "population" },
  { key: "shelters", label: "Shelters", ids: ["shelters"], style: "shelter" },
  { key: "shelter_zones", label: "Shelter zones", ids: ["shelter_zones"], style: "zone" },
];
const UTILITY_PROPERTIES = ["utility", "utility_class", "utility_code", "class_code"];
const LAYER_LABELS = { buildings: "Buildings (IFC)", pipes: "Pipes" };

function status(text, isError = false) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function fail(layer, error) {
  // A broken layer is reported in the panel and skipped; the rest of the city still shows.
  const message = `${layer}: ${error && error.message ? error.message : error}`;
  cim.errors.push(message);
  console.warn(`cim viewer: ${message}`);
  status(`${cim.errors.length} layer(s) failed — ${message}`, true);
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function addToggle(listId, label, checked, onChange, extra) {
  const li = document.createElement("li");
  const input = document.createElement("input");
  input.type = "checkbox";
  input.checked = checked;
  input.addEventListener("change", () => onChange(input.checked));
  const text = document.createElement("label");
  text.append(input, extra || "", label);
  li.append(text);
  document.getElementById(listId).append(li);
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
  });
  viewer.scene.globe.depthTestAgainstTerrain = true;
  // Cheaper frames (software WebGL in CI, modest laptops): no FXAA pass, no ground atmosphere.
  viewer.scene.postProcessStages.fxaa.enabled = false;
  viewer.scene.globe.showGroundAtmosphere = false;
  viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#3b4a3f");
  viewer.scene.postRender.addEventListener(function firstFrame() {
    cim.firstFrameMs = performance.now();
    viewer.scene.postRender.removeEventListener(firstFrame);
  });
  return viewer;
}

async function addTerrain(viewer, url) {
  cim.terrain.url = url;
  try {
    viewer.terrainProvider = await Cesium.CesiumTerrainProvider.fromUrl(url, {
      requestVertexNormals: true,
    });
    cim.terrain.ready = true;
    addToggle("layers", "Terrain", true, (on) => {
      viewer.terrainProvider = on
        ? cim.terrain.provider
        : new Cesium.EllipsoidTerrainProvider();
    });
    cim.terrain.provider = viewer.terrainProvider;
  } catch (error) {
    cim.terrain.error = String(error);
    fail("terrain", error);
  }
}

async function addTileset(viewer, layer, url) {
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
      fail(layer, error.message || error);
    });
    tileset.allTilesLoaded.addEventListener(() => {
      entry.loaded = true;
    });
    viewer.scene.primitives.add(tileset);
    addToggle("layers", LAYER_LABELS[layer] || layer, true, (on) => {
      tileset.show = on;
      viewer.scene.requestRender();
    });
  } catch (error) {
    fail(layer, error);
  }
}

function detectUtilityProperty(content) {
  if (!content || content.featuresLength === 0) return;
  const ids = content.getFeature(0).getPropertyIds();
  cim.utilityProperty = UTILITY_PROPERTIES.find((name) => ids.includes(name)) || null;
  applyClassStyle();
}

function applyClassStyle() {
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
    const li = addToggle("legend", ` ${cls.name} ${cls.nameZh}`, true, (on) => {
      if (on) cim.hiddenClasses.delete(cls.code);
      else cim.hiddenClasses.add(cls.code);
      applyClassStyle();
    }, extra);
    li.title = cls.subclasses.map((s) => `${s.code} ${s.name} ${s.nameZh}`).join("\n");
  }
}

function featureStyle(kind, properties) {
  if (kind === "hazard") return { fill: Cesium.Color.RED.withAlpha(0.3), outline: Cesium.Color.RED };
  if (kind === "population") {
    return { fill: Cesium.Color.fromCssColorString("#8e7cc3").withAlpha(0.25), outline: Cesium.Color.WHITE.withAlpha(0.4) };
  }
  if (kind === "zone") {
    const ratio = Number(properties.load_ratio ?? properties.loadRatio ?? 0);
    return { fill: loadRatioColour(ratio).withAlpha(0.45), outline: Cesium.Color.WHITE };
  }
  return { fill: Cesium.Color.fromCssColorString("#2ecc71"), outline: Cesium.Color.WHITE };
}

function loadRatioColour(ratio) {
  // green (empty) → yellow (half) → red (full or over)
  const t = Math.max(0, Math.min(1, ratio));
  return Cesium.Color.fromHsl((1 - t) * 0.33, 0.85, 0.5);
}
cim.loadRatioColour = loadRatioColour;

async function addFeatureLayer(viewer, layer, collectionId, query = "") {
  try {
    const url = `/collections/${collectionId}/items?limit=10000${query}`;
    const source = await Cesium.GeoJsonDataSource.load(await getJson(url, {
      headers: { Accept: "application/geo+json" },
    }));
    for (const entity of source.entities.values) {
      const properties = entity.properties ? entity.properties.getValue(Cesium.JulianDate.now()) : {};
      const style = featureStyle(layer.style, properties || {});
      if (entity.polygon) {
        entity.polygon.material = style.fill;
        entity.polygon.outline = false;
        entity.polygon.classificationType = Cesium.ClassificationType.TERRAIN;
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
    if (!previous) {
      addToggle("layers", layer.label, true, (on) => {
        cim.geojson[layer.key].show = on;
        viewer.scene.requestRender();
      });
    }
    viewer.scene.requestRender();
  } catch (error) {
    fail(layer.label, error);
  }
}
cim.addFeatureLayer = (key, query) => {
  const layer = FEATURE_LAYERS.find((l) => l.key === key);
  return addFeatureLayer(cim.viewer, layer, layer.collection || layer.ids[0], query);
};

async function addFeatureLayers(viewer, endpoints) {
  if (!endpoints.collections) return;
  const listing = await getJson("/collections", { headers: { Accept: "application/json" } });
  const available = new Set((listing.collections || []).map((c) => c.id));
  for (const layer of FEATURE_LAYERS) {
    layer.collection = layer.ids.find((id) => available.has(id));
    if (layer.collection) await addFeatureLayer(viewer, layer, layer.collection);
  }
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
    kind.textContent = dataset.kind;
    const button = document.createElement("button");
    button.className = "fly";
    button.textContent = "fly to";
    button.addEventListener("click", () => flyToBox(dataset.bbox));
    li.append(kind, name, button);
    list.append(li);
  }
  document.getElementById("datasets-section").hidden = list.children.length === 0;
  return datasets;
}

function flyToBox(bbox, duration = 1.5) {
  const [west, south, east, north] = bbox;
  const pad = Math.max(east - west, north - south) * 0.15 + 0.0005;
  const rectangle = Cesium.Rectangle.fromDegrees(west - pad, south - pad, east + pad, north + pad);
  cim.viewer.camera.flyTo({ destination: rectangle, duration });
}
cim.flyToBox = flyToBox;

function setUnderground(viewer, on) {
  const globe = viewer.scene.globe;
  const alpha = Number(document.getElementById("ground-alpha").value);
  globe.translucency.enabled = on;
  globe.translucency.frontFaceAlpha = alpha;
  globe.translucency.backFaceAlpha = alpha;
  // Below the surface the camera must not bounce back up, and pipes must show through.
  viewer.scene.screenSpaceCameraController.enableCollisionDetection = !on;
  globe.depthTestAgainstTerrain = !on;
  viewer.scene.requestRender();
}
cim.setUnderground = (on) => {
  document.getElementById("underground").checked = on;
  setUnderground(cim.viewer, on);
};

function showProperties(title, sections) {
  const table = document.getElementById("properties-table");
  table.replaceChildren();
  for (const [heading, values] of sections) {
    const head = table.insertRow();
    head.className = "section";
    const th = document.createElement("th");
    th.colSpan = 2;
    th.textContent = heading;
    head.append(th);
    for (const [key, value] of Object.entries(values)) {
      if (value === null || value === undefined || typeof value === "object") continue;
      const row = table.insertRow();
      const name = document.createElement("th");
      name.textContent = key;
      const cell = row.insertCell();
      cell.textContent = String(value);
      row.prepend(name);
    }
  }
  document.getElementById("properties-title").textContent = title;
  document.getElementById("properties").hidden = false;
}
cim.showProperties = showProperties;

function tileFeatureProperties(feature) {
  const values = {};
  for (const id of feature.getPropertyIds()) values[id] = feature.getProperty(id);
  return values;
}

async function fullRecord(layer, values) {
  // The API's record of the picked feature, when the OGC API and the feature's id are there.
  const collection = { buildings: "building_elements", pipes: "pipe_segments" }[layer];
  const id = values.id ?? values.feature_id;
  if (!cim.config.endpoints.collections || !collection || id === undefined) return null;
  const response = await fetch(`/collections/${collection}/items/${encodeURIComponent(id)}`, {
    headers: { Accept: "application/geo+json" },
  });
  return response.ok ? (await response.json()).properties : null;
}

async function pick(position) {
  const picked = cim.viewer.scene.pick(position);
  cim.selected = null;
  if (picked instanceof Cesium.Cesium3DTileFeature) {
    const layer = Object.keys(cim.tilesets).find((k) => cim.tilesets[k].tileset === picked.tileset);
    const values = tileFeatureProperties(picked);
    cim.selected = { layer, properties: values, feature: picked };
    const title = values.guid || values.code || values.name || layer;
    showProperties(title, [["tile metadata", values]]);
    if (cim.onPick) cim.onPick(cim.selected);
    const record = await fullRecord(layer, values).catch(() => null);
    if (record && cim.selected && cim.selected.feature === picked) {
      showProperties(title, [["tile metadata", values], ["database record", record]]);
    }
  } else if (picked && picked.id instanceof Cesium.Entity) {
    const entity = picked.id;
    const values = entity.properties ? entity.properties.getValue(Cesium.JulianDate.now()) : {};
    cim.selected = { layer: "features", properties: values, entity };
    showProperties(values.name || entity.name || "feature", [["properties", values]]);
  } else {
    document.getElementById("properties").hidden = true;
  }
  return cim.selected;
}
cim.pick = pick;

async function main() {
  const config = (cim.config = await getJson("config.json"));
  const viewer = (cim.viewer = createViewer());
  document.getElementById("underground").addEventListener("change", (e) => setUnderground(viewer, e.target.checked));
  document.getElementById("ground-alpha").addEventListener("input", () =>
    setUnderground(viewer, document.getElementById("underground").checked));
  document.getElementById("properties-close").addEventListener("click", () => {
    document.getElementById("properties").hidden = true;
  });
  addToggle("layers", "Base map (Natural Earth II)", true, (on) => {
    viewer.imageryLayers.get(0).show = on;
    viewer.scene.requestRender();
  });
  const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  handler.setInputAction((click) => pick(click.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);

  const datasets = await addDatasets(viewer).catch((error) => (fail("datasets", error), []));
  const boxes = datasets.filter((d) => d.bbox).map((d) => d.bbox);
  if (boxes.length) {
    const all = boxes.reduce((a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])]);
    cim.cityBox = all;
    flyToBox(all, 0);
  }
  if (config.terrain) await addTerrain(viewer, config.terrain);
  await Promise.all(config.tilesets.map((t) => addTileset(viewer, t.layer, t.url)));
  buildLegend(config.utilityClasses);
  await addFeatureLayers(viewer, config.endpoints).catch((error) => fail("OGC API layers", error));
  cim.ready = true;
  if (!cim.errors.length) {
    const count = Object.keys(cim.tilesets).length + Object.keys(cim.geojson).length + (cim.terrain.ready ? 1 : 0);
    status(count ? `${count} layer(s)` : "no data imported yet");
  }
  document.dispatchEvent(new Event("cim-ready"));
  viewer.scene.requestRender();
}

main().catch((error) => fail("viewer", error));
