// cim viewer shelter tools: run a shelter plan (zones coloured by load ratio, uncovered units
// highlighted, coverage summary) and suggest new shelter sites for the uncovered (MCLP). The
// newest stored plan's uncovered units are shown at start, like its zones. A plan excludes every
// hazard kind, flood zones only (imported, or a flood simulation saved as hazard zones) or none;
// the shelters it could not use are drawn grey with a cross and listed. Buttons, hints and API
// calls come from tools.js (cim.toolkit); a tool appears only when its endpoint exists.
"use strict";

(function shelterTools() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { t, span } = window.i18n;
  // the API's levels; labelled by shelter.level.* (reasons of the uncovered: shelter.reason.*)
  const LEVELS = ["emergency", "short", "medium", "long", "central"];
  const SITE_COLOUR = Cesium.Color.fromCssColorString("#00e5ff");
  const suggested = [];
  // what a plan excludes (shelter.exclude.*): the API's default (every kind), flood, nothing
  const EXCLUDE = { all: undefined, flood: ["flood"], none: [] };
  const UNUSABLE_COLOUR = Cesium.Color.fromCssColorString("#9e9e9e");
  const UNUSABLE_SWATCH = "linear-gradient(45deg, transparent 42%, #111 42% 58%, transparent 58%), "
    + "linear-gradient(-45deg, transparent 42%, #111 42% 58%, transparent 58%), #9e9e9e"; // grey, a cross
  const unusableMarks = [];

  function endpoint(name, planId) {
    const template = cim.config.endpoints[name];
    return template && template.replace("{plan_id}", encodeURIComponent(planId));
  }

  const percent = (ratio) => window.i18n.percent(ratio);

  function levelName(level) {
    // a level the string table knows, in the page's language; else as the API gave it
    return window.i18n.has(`shelter.level.${level}`) ? span(`shelter.level.${level}`) : level;
  }

  function planLegend() {
    const ramp = [0, 0.5, 1].map((t) => cim.loadRatioColour(t).toCssColorString()).join(", ");
    kit.legend("plan", [
      [`linear-gradient(to right, ${ramp})`, "shelter.legend.load"],
      [cim.uncoveredColour, "shelter.legend.uncovered"],
      ...(unusableMarks.length ? [[UNUSABLE_SWATCH, "shelter.legend.unusable"]] : []),
    ]);
  }

  const unusableOf = (plan) => Object.entries((plan.stats && plan.stats.unusable_shelters) || {});
  const hazardNames = (kinds) => kinds.map((k) => (window.i18n.has(`hazard.kind.${k}`) ? t(`hazard.kind.${k}`) : k)).join(", ");

  function sitePoint(geometry) {
    // a point site as it is; a polygon site: the mean of its outer ring's corners
    if (geometry.type === "Point") return geometry.coordinates;
    const ring = geometry.type === "MultiPolygon" ? geometry.coordinates[0][0] : geometry.coordinates[0];
    const corners = ring.slice(0, -1);
    return [0, 1].map((i) => corners.reduce((sum, c) => sum + c[i], 0) / corners.length);
  }

  let crossedImage = null;
  function crossedDot() {
    // a grey dot with a black cross, drawn once (a point and a label may draw in either order)
    if (crossedImage) return crossedImage;
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 22;
    const g = canvas.getContext("2d");
    g.fillStyle = UNUSABLE_COLOUR.toCssColorString();
    g.strokeStyle = "#111";
    g.lineWidth = 1.5;
    g.beginPath();
    g.arc(11, 11, 9.5, 0, 2 * Math.PI);
    g.fill();
    g.stroke();
    g.lineWidth = 3;
    g.beginPath();
    g.moveTo(5.5, 5.5);
    g.lineTo(16.5, 16.5);
    g.moveTo(16.5, 5.5);
    g.lineTo(5.5, 16.5);
    g.stroke();
    crossedImage = canvas.toDataURL();
    return crossedImage;
  }

  // The shelters a plan could not use (in an excluded hazard zone, not designated, no
  // capacity): grey with a black cross over their usual dot.
  async function drawUnusable(plan) {
    while (unusableMarks.length) cim.viewer.entities.remove(unusableMarks.pop());
    const unusable = unusableOf(plan);
    const collections = cim.config.endpoints.collections;
    if (!unusable.length || !collections) return 0;
    const sites = await kit.getJson(`${collections}/shelters/items?limit=10000`);
    const byId = new Map(sites.features.map((f) => [String(f.id), f]));
    for (const [id, shelter] of unusable) {
      const site = byId.get(id);
      if (!site || !site.geometry) continue;
      const [lon, lat] = sitePoint(site.geometry);
      unusableMarks.push(cim.viewer.entities.add({
        name: t("feature.unusableShelter", { name: shelter.name ?? `#${id}` }),
        position: Cesium.Cartesian3.fromDegrees(lon, lat),
        billboard: {
          image: crossedDot(),
          heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
        },
        properties: { shelter_id: Number(id), name: shelter.name, reason: shelter.reason, hazards: shelter.hazards.join(", ") },
      }));
    }
    planLegend();
    cim.viewer.scene.requestRender();
    return unusableMarks.length;
  }

  function unusableTable(plan) {
    const unusable = unusableOf(plan);
    if (!unusable.length) return [];
    const reason = (r) => (window.i18n.has(`shelter.unusableReason.${r}`) ? span(`shelter.unusableReason.${r}`) : r);
    return [
      kit.heading("shelter.unusable"),
      kit.dataTable("plan-unusable", ["shelter", "reason", "hazards"].map((c) => `shelter.col.${c}`),
        unusable.map(([id, s]) => [kit.swatchText(UNUSABLE_SWATCH, s.name ?? `#${id}`), reason(s.reason), hazardNames(s.hazards)])),
    ];
  }

  function excludeSetting() {
    // under the plan button, always shown: the plan runs as soon as its button is clicked
    const select = document.createElement("select");
    select.id = "shelter-exclude";
    select.style.cssText = "background: rgba(0, 0, 0, 0.3); color: #e8eef2; border: 1px solid rgba(255, 255, 255, 0.2); border-radius: 3px;";
    for (const choice of Object.keys(EXCLUDE)) {
      select.add(window.i18n.set(new Option("", choice, choice === "all", choice === "all"), `shelter.exclude.${choice}`));
    }
    const label = document.createElement("label");
    label.id = "shelter-exclude-setting";
    label.style.cssText = "margin: 0 0 6px 10px; font-size: 12px; justify-content: space-between;";
    label.append(span("shelter.exclude.label"), select);
    return label;
  }

  function planRequest() {
    const choice = document.getElementById("shelter-exclude");
    const exclude = choice ? EXCLUDE[choice.value] : undefined;
    return exclude === undefined ? {} : { exclude_hazards: exclude };
  }

  // Zones and uncovered units of one plan, drawn; returns what was drawn.
  async function showPlanLayers(planId) {
    const zonesUrl = endpoint("shelterZones", planId);
    const uncoveredUrl = endpoint("shelterUncovered", planId);
    const [zones, uncovered] = await Promise.all([
      zonesUrl ? kit.getJson(zonesUrl) : null,
      uncoveredUrl ? kit.getJson(uncoveredUrl) : null,
    ]);
    await Promise.all([
      zones ? cim.showPlanLayer("shelter_zones", zones) : cim.addFeatureLayer("shelter_zones", ""),
      uncovered ? cim.showPlanLayer("uncovered_units", uncovered) : null,
    ]);
    if (uncovered) planLegend();
    return { zones, uncovered };
  }

  function uncoveredTotals(uncovered) {
    const features = uncovered ? uncovered.features : [];
    return {
      units: new Set(features.map((f) => f.properties.unit_id)).size,
      persons: features.reduce((sum, f) => sum + Number(f.properties.uncovered || 0), 0),
    };
  }

  function showSummary(plan, zones, uncovered) {
    const stats = plan.stats || {};
    const totals = uncoveredTotals(uncovered);
    const byReason = {};
    for (const [reason, persons] of Object.entries(stats.uncovered_by_reason || {})) {
      byReason[window.i18n.has(`shelter.reason.${reason}`) ? `shelter.reason.${reason}` : reason] = persons;
    }
    cim.showProperties(["shelter.planTitle", { id: plan.id }], [
      ["shelter.coverage", {
        "shelter.population": stats.population,
        "shelter.covered": stats.covered,
        "shelter.coverageRatio": percent(stats.coverage_ratio),
        "shelter.zones": zones ? zones.features.length : undefined,
        "shelter.uncoveredUnits": uncovered ? totals.units : undefined,
        "shelter.uncoveredPersons": uncovered ? totals.persons : stats.uncovered,
        "shelter.unusableCount": unusableOf(plan).length,
      }],
      ["shelter.byReason", byReason],
    ]);
    const shelters = [...(plan.shelters || [])].sort((a, b) => (b.load_ratio ?? 0) - (a.load_ratio ?? 0));
    const files = [["shelterZones", "download.zones"], ["shelterUncovered", "download.uncovered"]]
      .filter(([name]) => endpoint(name, plan.id))
      .map(([name, label]) => kit.downloads(name, endpoint(name, plan.id), "GET", undefined, label));
    document.getElementById("properties-extra").replaceChildren(
      ...files,
      kit.heading("shelter.byLoad"),
      kit.dataTable("plan-shelters", ["shelter", "level", "persons", "capacity", "load"].map((c) => `shelter.col.${c}`),
        shelters.map((s) => [s.name, levelName(s.level), s.population, s.capacity,
          kit.swatchText(cim.loadRatioColour(s.load_ratio ?? 0).toCssColorString(), percent(s.load_ratio))])),
      ...unusableTable(plan),
    );
    return totals;
  }

  // ---- shelter plan: run a plan, show its zones and uncovered units ------------------------
  async function shelterPlan() {
    kit.hint("shelter.running");
    try {
      const plan = await kit.postJson(cim.config.endpoints.shelterPlans, planRequest());
      kit.stop();
      const { zones, uncovered } = await showPlanLayers(plan.id);
      const totals = showSummary(plan, zones, uncovered);
      await drawUnusable(plan);
      kit.hint("shelter.planDone", {
        id: plan.id, ratio: percent(plan.stats && plan.stats.coverage_ratio), units: window.i18n.count(totals.units),
      });
      cim.lastPlan = plan;
    } catch (error) {
      kit.stop();
      kit.failed("shelter.planFailed", error);
    }
  }

  // ---- suggestion: k new sites covering the most uncovered persons --------------------------
  function suggestOptions() {
    const box = document.createElement("div");
    box.id = "suggest-options";
    const level = document.createElement("select");
    level.id = "suggest-level";
    for (const name of LEVELS) {
      const option = new Option("", name, name === "short", name === "short");
      level.add(window.i18n.set(option, `shelter.level.${name}`));
    }
    const levelLabel = document.createElement("label");
    levelLabel.append(span("suggest.level"), level);
    const run = document.createElement("button");
    run.id = "suggest-run";
    window.i18n.set(run, "suggest.run");
    run.addEventListener("click", () => {
      const k = Number(document.getElementById("suggest-k").value);
      if (!(Number.isInteger(k) && k >= 1)) {
        kit.hint("suggest.badK", undefined, true);
        return;
      }
      runSuggest(k, level.value);
    });
    box.append(kit.numberInput("suggest-k", "suggest.sites", 3, { min: "1", max: "50", step: "1" }), levelLabel, run);
    return box;
  }

  function suggest() {
    kit.hint("suggest.hint");
  }

  function clearSuggested() {
    while (suggested.length) cim.viewer.entities.remove(suggested.pop());
  }

  async function runSuggest(k, level) {
    const body = { k, level };
    if (cim.lastPlan) body.plan_id = cim.lastPlan.id;
    cim.lastSuggestion = null;
    kit.hint("suggest.choosing");
    try {
      const answer = await kit.postJson(cim.config.endpoints.shelterSuggest, body);
      kit.stop();
      clearSuggested();
      answer.sites.forEach((site, i) => {
        suggested.push(cim.viewer.entities.add({
          name: t("feature.suggestedSite", { rank: i + 1 }),
          position: Cesium.Cartesian3.fromDegrees(site.lon, site.lat),
          point: {
            pixelSize: 14,
            color: SITE_COLOUR,
            outlineColor: Cesium.Color.BLACK,
            outlineWidth: 2,
            heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
            disableDepthTestDistance: Number.POSITIVE_INFINITY,
          },
          properties: { rank: i + 1, covers: site.covers, lon: site.lon, lat: site.lat, name: site.name },
        }));
      });
      const levelText = window.i18n.has(`shelter.level.${level}`) ? t(`shelter.level.${level}`) : level;
      kit.legend("suggest", [[SITE_COLOUR.toCssColorString(), span("suggest.legend", { level: levelText, count: answer.sites.length })]]);
      cim.showProperties(["suggest.title", { count: answer.sites.length }], [
        ["suggest.section", {
          "suggest.demand": answer.demand,
          "suggest.levelRow": levelName(answer.level),
          "suggest.radius": answer.radius_m,
          "suggest.candidates": answer.candidates,
          "suggest.gain": answer.gain,
          "suggest.gainRatio": percent(answer.gain_ratio),
          "suggest.upperBound": answer.upper_bound,
          "suggest.method": answer.method,
          "suggest.status": answer.status,
        }],
      ]);
      document.getElementById("properties-extra").replaceChildren(
        kit.dataTable("suggested-sites", ["rank", "covers", "lon", "lat"].map((c) => `suggest.col.${c}`),
          answer.sites.map((s, i) => [i + 1, s.covers, s.lon.toFixed(5), s.lat.toFixed(5)])),
      );
      kit.hint("suggest.done", {
        count: answer.sites.length, gain: window.i18n.count(answer.gain), method: answer.method, status: answer.status,
      });
      cim.viewer.scene.requestRender();
      cim.lastSuggestion = { request: body, answer };
    } catch (error) {
      kit.failed("suggest.failed", error);
    }
  }

  async function showNewestPlan() {
    // The shelter_zones collection shows the newest plan's zones; add its uncovered units.
    const list = endpoint("shelterPlanList");
    if (!list || !endpoint("shelterUncovered", 0)) return;
    const plans = await kit.getJson(list);
    if (plans.length && !cim.lastPlan) {
      const uncovered = await kit.getJson(endpoint("shelterUncovered", plans[0].id));
      if (cim.lastPlan) return; // a plan run meanwhile shows its own
      await cim.showPlanLayer("uncovered_units", uncovered);
      planLegend();
    }
  }

  function install() {
    const endpoints = cim.config.endpoints;
    if (endpoints.shelterPlans) {
      kit.addTool("shelter-plan", "tool.shelterPlan", shelterPlan);
      document.getElementById("tools").append(excludeSetting());
    }
    if (endpoints.shelterSuggest) kit.addTool("shelter-suggest", "tool.shelterSuggest", suggest, suggestOptions());
    cim.newestPlanShown = showNewestPlan().catch((error) => console.warn(`cim viewer: newest plan: ${error.message}`));
  }

  cim.shelterTools = { showPlanLayers, runSuggest, drawUnusable, unusableImage: crossedDot };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
