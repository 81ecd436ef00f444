// cim viewer shelter tools: run a shelter plan (zones coloured by load ratio, uncovered units
// highlighted, coverage summary) and suggest new shelter sites for the uncovered (MCLP). The
// newest stored plan's uncovered units are shown at start, like its zones. Buttons, hints and
// API calls come from tools.js (cim.toolkit); a tool appears only when its endpoint exists.
"use strict";

(function shelterTools() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { t, span } = window.i18n;
  // the API's levels; labelled by shelter.level.* (reasons of the uncovered: shelter.reason.*)
  const LEVELS = ["emergency", "short", "medium", "long", "central"];
  const SITE_COLOUR = Cesium.Color.fromCssColorString("#00e5ff");
  const suggested = [];

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
    ]);
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
    );
    return totals;
  }

  // ---- shelter plan: run a plan, show its zones and uncovered units ------------------------
  async function shelterPlan() {
    kit.hint("shelter.running");
    try {
      const plan = await kit.postJson(cim.config.endpoints.shelterPlans, {});
      kit.stop();
      const { zones, uncovered } = await showPlanLayers(plan.id);
      const totals = showSummary(plan, zones, uncovered);
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
    if (endpoints.shelterPlans) kit.addTool("shelter-plan", "tool.shelterPlan", shelterPlan);
    if (endpoints.shelterSuggest) kit.addTool("shelter-suggest", "tool.shelterSuggest", suggest, suggestOptions());
    cim.newestPlanShown = showNewestPlan().catch((error) => console.warn(`cim viewer: newest plan: ${error.message}`));
  }

  cim.shelterTools = { showPlanLayers, runSuggest };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
