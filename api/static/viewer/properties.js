// cim viewer properties panel: what a click picked (a 3D Tiles feature, a line of the network
// overview, a GeoJSON entity) with its full database record from the OGC API, and the answers
// the analysis tools show there (cim.showProperties). Labels come from the string tables
// (i18n.js); values are data, numbers and dates in the page's locale.
"use strict";

(function properties() {
  const cim = window.cim;
  const labelled = cim.labelled;

  // A picked feature or an analysis answer in the right-hand panel. title: a name from the data
  // (a code, a GUID) or [key, params] of the string table; sections: [heading key, {row: value}]
  // where a row is a string-table key, a property name (translated by prop.<name> when known) or
  // data (a pipe code); a value is data, a number, or a Node (a translated span).
  function showProperties(title, sections) {
    const table = document.getElementById("properties-table");
    table.replaceChildren();
    document.getElementById("properties-extra").replaceChildren();
    for (const [heading, values] of sections) {
      const head = table.insertRow();
      head.className = "section";
      const th = document.createElement("th");
      th.colSpan = 2;
      window.i18n.set(th, heading);
      head.append(th);
      for (const [key, value] of Object.entries(values)) {
        if (value === null || value === undefined) continue;
        if (typeof value === "object" && !(value instanceof Node)) continue;
        const row = table.insertRow();
        const name = document.createElement("th");
        if (window.i18n.has(key)) window.i18n.set(name, key);
        else labelled(name, "prop", key);
        const cell = row.insertCell();
        cell.append(propertyValue(value));
        row.prepend(name);
      }
    }
    const titleElement = document.getElementById("properties-title");
    if (Array.isArray(title)) {
      window.i18n.set(titleElement, title[0], title[1]);
    } else {
      delete titleElement.dataset.i18n; // data, not a string-table text: kept on a switch
      titleElement.textContent = title;
    }
    document.getElementById("properties").hidden = false;
  }

  function propertyValue(value) {
    if (value instanceof Node) return value;
    // Stored doubles such as 304.79999999999995 read better rounded to the millimetre.
    if (typeof value === "number") return window.i18n.number(value);
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) return window.i18n.date(value);
    return String(value);
  }
  cim.showProperties = showProperties;

  function tileFeatureProperties(feature) {
    const values = {};
    for (const id of feature.getPropertyIds()) values[id] = feature.getProperty(id);
    return values;
  }

  async function fullRecord(layer, values) {
    // The API's record of the picked feature: by its database id when the tile carries one,
    // else by its GUID / code through a CQL2 filter on the OGC API collection.
    const spec = { buildings: ["building_elements", "guid"], pipes: ["pipe_segments", "code"] }[layer];
    if (!cim.config.endpoints.collections || !spec) return null;
    const [collection, key] = spec;
    const id = values.table_id ?? values.element_id ?? values.id ?? values.feature_id;
    let url;
    if (id !== undefined) {
      url = `/collections/${collection}/items/${encodeURIComponent(id)}`;
    } else if (values[key] !== undefined) {
      let filter = `${key}='${String(values[key]).replace(/'/g, "''")}'`;
      const dataset = values.dataset_id ?? values.dataset;
      if (Number.isInteger(Number(dataset)) && dataset !== "") filter += ` AND dataset_id=${Number(dataset)}`;
      url = `/collections/${collection}/items?limit=1&filter=${encodeURIComponent(filter)}`;
    } else {
      return null;
    }
    const response = await fetch(url, { headers: { Accept: "application/geo+json" } });
    if (!response.ok) return null;
    const answer = await response.json();
    const feature = answer.type === "FeatureCollection" ? answer.features[0] : answer;
    return feature ? { id: feature.id, ...feature.properties } : null;
  }

  async function pick(position) {
    const picked = cim.viewer.scene.pick(position);
    cim.selected = null;
    if (picked instanceof Cesium.Cesium3DTileFeature) {
      const layer = Object.keys(cim.tilesets).find((k) => cim.tilesets[k].tileset === picked.tileset);
      const values = tileFeatureProperties(picked);
      cim.selected = { layer, properties: values, feature: picked };
      const title = values.guid || values.code || values.name || layer;
      showProperties(title, [["properties.tileMetadata", values]]);
      if (cim.onPick) cim.onPick(cim.selected);
      const record = await fullRecord(layer, values).catch(() => null);
      if (record && cim.selected && cim.selected.feature === picked) {
        showProperties(title, [["properties.tileMetadata", values], ["properties.databaseRecord", record]]);
      }
    } else if (picked && picked.id && picked.id.layer === "pipes") {
      // a line of the network overview (seen from far away)
      const values = { code: picked.id.code, utility: picked.id.utility, table_id: picked.id.segmentId };
      cim.selected = { layer: "pipes", properties: values };
      showProperties(values.code, [["properties.overviewLine", values]]);
      const record = await fullRecord("pipes", values).catch(() => null);
      if (record && cim.selected && cim.selected.properties === values) {
        showProperties(values.code, [["properties.overviewLine", values], ["properties.databaseRecord", record]]);
      }
    } else if (picked && picked.id instanceof Cesium.Entity) {
      const entity = picked.id;
      const values = entity.properties ? entity.properties.getValue(Cesium.JulianDate.now()) : {};
      cim.selected = { layer: "features", properties: values, entity };
      showProperties(values.name || entity.name || ["properties.feature"], [["properties.properties", values]]);
    } else {
      document.getElementById("properties").hidden = true;
    }
    return cim.selected;
  }
  cim.pick = pick;
})();
