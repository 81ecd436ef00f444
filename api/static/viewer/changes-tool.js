// cim viewer changes view (变更, issue 18): pick a versioned dataset and two of its versions;
// GET /datasets/{id}/diff answers with the features added, removed and changed between them and
// a GeoJSON of them, drawn here - added green, removed red, changed amber - with the totals in
// the panel. A click on a drawn feature lists what changed: the attributes by name and how far
// it moved. Datasets with one version only are not offered (nothing to compare).
"use strict";

(function changesTool() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { span } = window.i18n;
  // the API's states; labelled by changes.state.* and changes.legend.*
  const CHANGE_COLOURS = { added: "#2ecc40", removed: "#ff2d2d", changed: "#ffb000" };
  const STATES = Object.keys(CHANGE_COLOURS);
  let versioned = []; // [{dataset, versions}] with two versions or more

  function select(id, labelKey) {
    const element = document.createElement("select");
    element.id = id;
    const label = document.createElement("label");
    label.append(span(labelKey), element);
    return { element, label };
  }

  function changesOptions() {
    const box = document.createElement("div");
    box.id = "changes-options";
    const dataset = select("changes-dataset", "changes.dataset");
    const from = select("changes-from", "changes.from");
    const to = select("changes-to", "changes.to");
    dataset.element.addEventListener("change", () => fillVersions(Number(dataset.element.value)));
    const run = document.createElement("button");
    run.id = "changes-run";
    window.i18n.set(run, "changes.run");
    run.addEventListener("click", () => {
      const fromVersion = Number(from.element.value);
      const toVersion = Number(to.element.value);
      if (!(fromVersion < toVersion)) {
        kit.hint("changes.badRange", undefined, true);
        return;
      }
      showChanges(Number(dataset.element.value), fromVersion, toVersion);
    });
    box.append(dataset.label, from.label, to.label, run);
    return box;
  }

  function versionLabel(version) {
    return `v${version.version} · ${window.i18n.date(version.created_at)}`;
  }

  function fillVersions(datasetId, keep = false) {
    // keep: the versions chosen stay (a language switch re-writes their dates)
    const entry = versioned.find((v) => v.dataset.id === datasetId);
    if (!entry) return;
    const count = entry.versions.length;
    for (const [id, last] of [["changes-from", count - 2], ["changes-to", count - 1]]) {
      const element = document.getElementById(id);
      const chosen = keep ? entry.versions.findIndex((v) => String(v.version) === element.value) : last;
      element.replaceChildren(...entry.versions.map((v, i) =>
        new Option(versionLabel(v), String(v.version), i === chosen, i === chosen)));
    }
  }
  document.addEventListener("cim-locale", () => {
    const dataset = document.getElementById("changes-dataset");
    if (dataset && dataset.value) fillVersions(Number(dataset.value), true);
  });

  // The pipe datasets (the versioned kind) and their versions; those with two or more.
  async function loadVersioned() {
    const base = cim.config.endpoints.datasets;
    const listing = await kit.getJson(`${base}?kind=pipes`);
    const found = await Promise.all((listing.datasets || []).map(async (dataset) => {
      const answer = await kit.getJson(`${base}/${dataset.id}/versions`).catch(() => null);
      return { dataset, versions: answer ? answer.versions : [] };
    }));
    return found.filter((entry) => entry.versions.length >= 2);
  }

  async function changes() {
    kit.hint("changes.loading");
    try {
      versioned = await loadVersioned();
    } catch (error) {
      kit.failed("changes.failed", error);
      return;
    }
    const datasets = document.getElementById("changes-dataset");
    datasets.replaceChildren(...versioned.map((entry) =>
      new Option(`${entry.dataset.name} (#${entry.dataset.id})`, String(entry.dataset.id))));
    if (!versioned.length) {
      kit.hint("changes.none");
      return;
    }
    fillVersions(versioned[0].dataset.id);
    kit.hint("changes.hint");
  }

  function colourOf(state) {
    return Cesium.Color.fromCssColorString(CHANGE_COLOURS[state] || "#ffffff");
  }

  // Points and lines where they stand (pipes lie under the ground: drawn through it).
  function drawFeature(feature) {
    const p = feature.properties;
    const geometry = feature.geometry;
    if (!geometry || !CHANGE_COLOURS[p.state]) return [];
    const colour = colourOf(p.state);
    // flat values only: an entity's property bag turns nested objects into deep chains
    const common = { name: p.code, properties: { ...p, attributes: (p.attributes || []).join(", "), changes: changedValues(p) } };
    if (geometry.type === "Point") {
      const [x, y, z] = geometry.coordinates;
      return [kit.draw({
        ...common,
        position: Cesium.Cartesian3.fromDegrees(x, y, z ?? 0),
        point: { pixelSize: 11, color: colour, outlineColor: Cesium.Color.BLACK, outlineWidth: 1, disableDepthTestDistance: Number.POSITIVE_INFINITY },
      })];
    }
    const lines = geometry.type === "MultiLineString" ? geometry.coordinates : [geometry.coordinates];
    return lines.map((line) => kit.draw({
      ...common,
      polyline: {
        positions: Cesium.Cartesian3.fromDegreesArrayHeights(line.flatMap(([x, y, z]) => [x, y, z ?? 0])),
        width: 6,
        arcType: Cesium.ArcType.NONE,
        material: colour,
        depthFailMaterial: colour.withAlpha(0.7),
      },
    }));
  }

  // "diameter_mm: 400 → 500; attrs.remark: – → new" from the diff's changes (names only for an
  // answer without values).
  function changedValues(properties) {
    const shown = (value) => (value === null || value === undefined ? "–"
      : typeof value === "string" ? value : JSON.stringify(value));
    const changes = properties.changes || {};
    const names = Object.keys(changes).length ? Object.keys(changes) : (properties.attributes || []);
    return names.map((name) => (name in changes
      ? `${name}: ${shown(changes[name].from)} → ${shown(changes[name].to)}` : name)).join("; ");
  }

  // The panel of a clicked feature: its state, and for a changed one what changed.
  function describe(properties) {
    const values = {
      "changes.code": properties.code,
      "changes.layer": span(`changes.table.${properties.layer}`),
      "changes.stateRow": kit.swatchText(CHANGE_COLOURS[properties.state], span(`changes.state.${properties.state}`)),
      "changes.class": properties.utility ? (kit.className(properties.utility) || properties.utility) : undefined,
    };
    if (properties.state === "changed") {
      values["changes.attributes"] = changedValues(properties) || span("properties.none");
      values["changes.moved"] = properties.moved_m ?? undefined;
      values["changes.shape"] = span(properties.shape_changed ? "changes.yes" : "changes.no");
    }
    cim.showProperties(properties.code || ["changes.feature"], [["changes.featureSection", values]]);
    cim.lastChangeShown = properties;
  }

  function summaryRows(summary) {
    const rows = [];
    for (const [table, byClass] of Object.entries(summary || {})) {
      for (const [utility, counts] of Object.entries(byClass)) {
        rows.push([span(`changes.table.${table}`), utility || "–", ...STATES.map((s) => counts[s] || 0)]);
      }
    }
    return rows;
  }

  async function showChanges(datasetId, fromVersion, toVersion) {
    const url = `${cim.config.endpoints.datasets}/${datasetId}/diff?from=${fromVersion}&to=${toVersion}&geojson_crs=EPSG:4326`;
    cim.lastChanges = null;
    kit.hint("changes.computing");
    try {
      const diff = await kit.getJson(url);
      kit.clearDrawn();
      shown = true;
      cim.describable = true; // a click on a drawn feature describes its change (app.js)
      const drawn = [];
      for (const feature of diff.geojson.features) {
        for (const entity of drawFeature(feature)) {
          entity.cimDescribe = () => describe(feature.properties);
          drawn.push({ code: feature.properties.code, layer: feature.properties.layer, state: feature.properties.state, entity });
        }
      }
      // the pipes of the tiles: changed and added ones in their colours, the rest faded
      const segments = diff.geojson.features.filter((f) => f.properties.layer === "pipe_segment" && f.properties.state !== "removed");
      kit.highlightCodes(Object.fromEntries(segments.map((f) => [f.properties.code, CHANGE_COLOURS[f.properties.state]])));
      kit.legend("changes", STATES.map((state) => [CHANGE_COLOURS[state], span(`changes.legend.${state}`, { count: diff.totals[state] ?? 0 })]));
      const dataset = versioned.find((v) => v.dataset.id === datasetId);
      cim.showProperties(["changes.title", { name: dataset ? dataset.dataset.name : datasetId, from: fromVersion, to: toVersion }], [
        ["changes.totals", Object.fromEntries(STATES.map((s) => [`changes.state.${s}`, diff.totals[s] ?? 0]))],
      ]);
      document.getElementById("properties-extra").replaceChildren(
        kit.heading("changes.byClass"),
        kit.dataTable("changes-summary", ["table", "class", "added", "removed", "changed"].map((c) => `changes.col.${c}`), summaryRows(diff.summary)),
        kit.note(diff.geojson.features.length < diff.features.length ? "changes.truncated" : "changes.clickHint"),
      );
      kit.hint("changes.done", { count: diff.features.length });
      cim.renderUntilBuilt();
      cim.lastChanges = { datasetId, fromVersion, toVersion, diff, drawn };
    } catch (error) {
      kit.failed("changes.failed", error);
    }
  }

  function install() {
    // only where there are pipes: the versioned kind (datasets.json lists what is readable)
    const pipes = cim.datasets.some((d) => d.kind === "pipes");
    if (pipes && cim.config.endpoints.datasets && cim.config.endpoints.collections) {
      kit.addTool("changes", "tool.changes", changes, changesOptions());
    }
  }

  let shown = false; // changes are drawn: the next stop of a tool clears them
  kit.onStop.push(() => {
    if (!shown) return;
    shown = false;
    cim.describable = false;
    kit.legend("changes", null);
    kit.clearDrawn();
  });
  // For scripts and the browser tests: the view without the clicks, its colours and its panel.
  Object.assign(cim.tools, { changes: showChanges, changeColours: CHANGE_COLOURS, describeChange: describe, loadVersioned });

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
