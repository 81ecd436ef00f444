// cim viewer shelter tools: run a shelter plan (zones coloured by load ratio, uncovered units
// highlighted, coverage summary) and suggest new shelter sites for the uncovered (MCLP). The
// newest stored plan's uncovered units are shown at start, like its zones. Buttons, hints and
// API calls come from tools.js (cim.toolkit); a tool appears only when its endpoint exists.
"use strict";

(function shelterTools() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const LEVELS = ["emergency", "short", "medium", "long", "central"];
  const SITE_COLOUR = Cesium.Color.fromCssColorString("#00e5ff");
  const REASONS = {
    out_of_reach: "out of reach",
    in_hazard_zone: "only hazard-zone shelters in reach",
    over_capacity: "shelters in reach full",
  };
  const suggested = [];

  function endpoint(name, planId) {
    const template = cim.config.endpoints[name];
    return template && template.replace("{plan_id}", encodeURIComponent(planId));
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "–" : `${(100 * ratio).toFixed(1)} %`;
  }

  function planLegend() {
    const ramp = [0, 0.5, 1].map((t) => cim.loadRatioColour(t).toCssColorString()).join(", ");
    kit.legend("plan", [
      [`linear-gradient(to right, ${ramp})`, "zone load ratio: empty → full"],
      [cim.uncoveredColour, "uncovered units (click: reason, persons)"],
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
      byReason[REASONS[reason] || reason] = persons;
    }
    cim.showProperties(`Shelter plan ${plan.id}`, [
      ["coverage", {
        population: stats.population,
        covered: stats.covered,
        "coverage ratio": percent(stats.coverage_ratio),
        zones: zones ? zones.features.length : undefined,
        "uncovered units": uncovered ? totals.units : undefined,
        "uncovered persons": uncovered ? totals.persons : stats.uncovered,
      }],
      ["uncovered by reason (persons)", byReason],
    ]);
    const shelters = [...(plan.shelters || [])].sort((a, b) => (b.load_ratio ?? 0) - (a.load_ratio ?? 0));
    document.getElementById("properties-extra").replaceChildren(
      kit.heading("Shelters by load ratio"),
      kit.dataTable("plan-shelters", ["shelter", "level", "persons", "capacity", "load"],
        shelters.map((s) => [s.name, s.level, s.population, s.capacity,
          kit.swatchText(cim.loadRatioColour(s.load_ratio ?? 0).toCssColorString(), percent(s.load_ratio))])),
    );
    return totals;
  }

  // ---- shelter plan: run a plan, show its zones and uncovered units ------------------------
  async function shelterPlan() {
    kit.hint("Running a shelter plan…");
    try {
      const plan = await kit.postJson(cim.config.endpoints.shelterPlans, {});
      kit.stop();
      const { zones, uncovered } = await showPlanLayers(plan.id);
      const totals = showSummary(plan, zones, uncovered);
      kit.hint(`plan ${plan.id}: ${percent(plan.stats && plan.stats.coverage_ratio)} covered,`
        + ` ${totals.units} uncovered unit(s); zones by load ratio (green empty → red full)`);
      cim.lastPlan = plan;
    } catch (error) {
      kit.stop();
      kit.hint(`shelter plan failed: ${error.message}`);
    }
  }

  // ---- suggestion: k new sites covering the most uncovered persons --------------------------
  function suggestOptions() {
    const box = document.createElement("div");
    box.id = "suggest-options";
    const level = document.createElement("select");
    level.id = "suggest-level";
    for (const name of LEVELS) level.add(new Option(name, name, name === "short", name === "short"));
    const levelLabel = document.createElement("label");
    levelLabel.append("Level", level);
    const run = document.createElement("button");
    run.id = "suggest-run";
    run.textContent = "Suggest sites";
    run.addEventListener("click", () => {
      const k = Number(document.getElementById("suggest-k").value);
      if (!(Number.isInteger(k) && k >= 1)) {
        kit.hint("k must be a whole number of sites, 1 or more.");
        return;
      }
      runSuggest(k, level.value);
    });
    box.append(kit.numberInput("suggest-k", "Sites (k)", 3, { min: "1", max: "50", step: "1" }), levelLabel, run);
    return box;
  }

  function suggest() {
    kit.hint("Choose k and the level, then Suggest sites (demand: the latest plan's uncovered).");
  }

  function clearSuggested() {
    while (suggested.length) cim.viewer.entities.remove(suggested.pop());
  }

  async function runSuggest(k, level) {
    const body = { k, level };
    if (cim.lastPlan) body.plan_id = cim.lastPlan.id;
    cim.lastSuggestion = null;
    kit.hint("Choosing sites…");
    try {
      const answer = await kit.postJson(cim.config.endpoints.shelterSuggest, body);
      kit.stop();
      clearSuggested();
      answer.sites.forEach((site, i) => {
        suggested.push(cim.viewer.entities.add({
          name: `suggested site ${i + 1}`,
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
      kit.legend("suggest", [[SITE_COLOUR.toCssColorString(), `suggested ${level} sites (${answer.sites.length})`]]);
      cim.showProperties(`Suggested sites: ${answer.sites.length}`, [
        ["suggestion", {
          demand: answer.demand,
          level: answer.level,
          "radius (m)": answer.radius_m,
          candidates: answer.candidates,
          "gain (persons)": answer.gain,
          "gain ratio": percent(answer.gain_ratio),
          "upper bound": answer.upper_bound,
          method: answer.method,
          status: answer.status,
        }],
      ]);
      document.getElementById("properties-extra").replaceChildren(
        kit.dataTable("suggested-sites", ["#", "covers (persons)", "lon", "lat"],
          answer.sites.map((s, i) => [i + 1, s.covers, s.lon.toFixed(5), s.lat.toFixed(5)])),
      );
      kit.hint(`${answer.sites.length} site(s) would cover ${Number(answer.gain).toFixed(0)} more person(s)`
        + ` (${answer.method}, ${answer.status}).`);
      cim.viewer.scene.requestRender();
      cim.lastSuggestion = { request: body, answer };
    } catch (error) {
      kit.hint(`suggestion failed: ${error.message}`);
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
    if (endpoints.shelterPlans) kit.addTool("shelter-plan", "Run a shelter plan", shelterPlan);
    if (endpoints.shelterSuggest) kit.addTool("shelter-suggest", "Suggest new shelter sites", suggest, suggestOptions());
    cim.newestPlanShown = showNewestPlan().catch((error) => console.warn(`cim viewer: newest plan: ${error.message}`));
  }

  cim.shelterTools = { showPlanLayers, runSuggest };

  if (cim.ready) install();
  else document.addEventListener("cim-ready", install, { once: true });
})();
