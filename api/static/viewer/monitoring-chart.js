// cim viewer device charts (issue 20): one datastream of a device over the last 24 h - its raw
// observations from the SensorThings API ($filter and $orderby on Observations) - or over the
// last 30 days from the hourly or daily roll-ups (GET /sensors/datastreams/{id}/series), drawn
// as a small inline SVG line (with the roll-ups' min-max band). No chart library: the page
// loads nothing but CesiumJS.
"use strict";

(function monitoringChart() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { span } = window.i18n;
  const SVG = "http://www.w3.org/2000/svg";
  const DAY_MS = 86_400_000;
  const RANGES = { day: 1, month: 30 }; // days back from now; labelled monitoring.range.*
  const MAX_RAW = 10000; // the SensorThings API's largest $top: the newest 10,000 values
  const BUCKET_MS = { hour: 3_600_000, day: DAY_MS };
  let shown = null; // {device, datastreamId, range}: what the panel charts now

  async function rawSeries(datastreamId, start) {
    const query = new URLSearchParams({
      $filter: `phenomenonTime ge ${start.toISOString()}`,
      $orderby: "phenomenonTime desc",
      $top: String(MAX_RAW),
      $select: "phenomenonTime,result",
    });
    const answer = await kit.getJson(`/sta/v1.1/Datastreams(${datastreamId})/Observations?${query}`);
    const points = answer.value
      .filter((o) => typeof o.result === "number")
      .map((o) => ({ time: Date.parse(o.phenomenonTime.split("/")[0]), value: o.result }))
      .reverse();
    return { resolution: "raw", points, truncated: Boolean(answer["@iot.nextLink"]) };
  }

  async function rolledSeries(datastreamId, start, end) {
    // auto: hourly buckets for 30 days (720 at most), daily ones for longer spans
    const query = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), resolution: "auto" });
    const answer = await kit.getJson(`/sensors/datastreams/${datastreamId}/series?${query}`);
    const points = answer.points.map((p) => ({ time: Date.parse(p.time), value: p.mean, min: p.min, max: p.max }));
    return { resolution: answer.resolution, points, truncated: false };
  }

  function element(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    parent.append(node);
    return node;
  }

  function text(parent, x, y, content, anchor = "start") {
    const node = element("text", { x, y, "font-size": 10, fill: "#333", "text-anchor": anchor }, parent);
    node.textContent = content;
    return node;
  }

  // The chart of `series` over start..end; its runs of points break where a bucket is missing
  // (a device off for a day is a gap, not a straight line across it).
  function draw(series, start, end, unit) {
    const [width, height, left, right, top, bottom] = [320, 170, 46, 8, 14, 30];
    const svg = document.createElementNS(SVG, "svg");
    svg.id = "monitoring-chart";
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.dataset.points = String(series.points.length);
    svg.dataset.resolution = series.resolution;
    const { points } = series;
    if (!points.length) {
      const empty = text(svg, width / 2, height / 2, "", "middle");
      window.i18n.set(empty, "monitoring.noValues");
      return svg;
    }
    let low = Math.min(...points.map((p) => p.min ?? p.value));
    let high = Math.max(...points.map((p) => p.max ?? p.value));
    if (low === high) [low, high] = [low - 1, high + 1];
    const t0 = start.getTime();
    const t1 = end.getTime();
    const x = (time) => left + ((time - t0) / (t1 - t0)) * (width - left - right);
    const y = (value) => top + ((high - value) / (high - low)) * (height - top - bottom);
    element("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, fill: "none", stroke: "#bbb" }, svg);
    const gap = BUCKET_MS[series.resolution] ? 1.5 * BUCKET_MS[series.resolution] : Infinity;
    const runs = [];
    points.forEach((p, i) => {
      if (i === 0 || p.time - points[i - 1].time > gap) runs.push([]);
      runs[runs.length - 1].push(p);
    });
    for (const run of runs) {
      if (run[0].min !== undefined) {
        const band = [...run.map((p) => `${x(p.time)},${y(p.max)}`), ...[...run].reverse().map((p) => `${x(p.time)},${y(p.min)}`)];
        element("polygon", { points: band.join(" "), fill: "#a6cee3", "fill-opacity": 0.6, stroke: "none" }, svg);
      }
    }
    const path = runs.map((run) => run.map((p, i) => `${i ? "L" : "M"}${x(p.time).toFixed(1)} ${y(p.value).toFixed(1)}`).join(" ")).join(" ");
    element("path", { d: path, fill: "none", stroke: "#1f78b4", "stroke-width": 1.5 }, svg);
    for (const run of runs.filter((r) => r.length === 1)) { // a lone value or bucket: a dot
      element("circle", { cx: x(run[0].time), cy: y(run[0].value), r: 2, fill: "#1f78b4" }, svg);
    }
    const { number, date } = window.i18n;
    text(svg, left - 3, top + 4, number(Math.round(high * 1000) / 1000), "end");
    text(svg, left - 3, height - bottom, number(Math.round(low * 1000) / 1000), "end");
    text(svg, left, 10, unit || "");
    text(svg, left, height - bottom + 13, date(start));
    text(svg, width - right, height - bottom + 13, date(end), "end");
    return svg;
  }

  function rangeButtons(device, datastreamId, range) {
    const box = document.createElement("p");
    box.className = "monitoring-ranges";
    for (const name of Object.keys(RANGES)) {
      const button = document.createElement("button");
      button.id = `monitoring-range-${name}`;
      button.className = name === range ? "active" : "";
      window.i18n.set(button, `monitoring.range.${name}`);
      button.addEventListener("click", () => show(device, datastreamId, name));
      box.append(button);
    }
    return box;
  }

  function streamChoice(device, datastreamId, range) {
    const select = document.createElement("select");
    select.id = "monitoring-datastream";
    for (const stream of device.datastreams) {
      select.append(new Option(stream.name, String(stream.id), false, stream.id === datastreamId));
    }
    select.addEventListener("change", () => show(device, Number(select.value), range));
    const label = document.createElement("label");
    label.className = "monitoring-datastream";
    label.append(span("monitoring.datastream"), select);
    return label;
  }

  // The chart of one datastream of `device` in the properties panel (below its rows).
  async function show(device, datastreamId, range = "day") {
    const extra = document.getElementById("properties-extra");
    shown = { device, datastreamId, range };
    cim.lastChart = null;
    const stream = device.datastreams.find((d) => d.id === datastreamId);
    if (!stream) {
      extra.replaceChildren(kit.note("monitoring.noDatastream"));
      return;
    }
    const end = new Date();
    const start = new Date(end.getTime() - RANGES[range] * DAY_MS);
    const caption = kit.note("monitoring.chartLoading");
    extra.replaceChildren(streamChoice(device, datastreamId, range), rangeButtons(device, datastreamId, range), caption);
    try {
      const series = range === "day" ? await rawSeries(datastreamId, start) : await rolledSeries(datastreamId, start, end);
      if (!shown || shown.datastreamId !== datastreamId || shown.range !== range) return; // a newer choice won
      window.i18n.set(caption, `monitoring.resolution.${series.resolution}`, { count: series.points.length });
      caption.after(draw(series, start, end, stream.unit));
      if (series.truncated) caption.after(kit.note("monitoring.truncated"));
      cim.lastChart = { thingId: device.id, datastreamId, range, resolution: series.resolution, points: series.points.length, truncated: series.truncated };
    } catch (error) {
      caption.classList.add("error");
      window.i18n.set(caption, "monitoring.chartFailed", { message: error.message });
    }
  }

  cim.monitoringChart = { show, ranges: RANGES };
})();
