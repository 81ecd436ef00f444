// cim viewer monitoring (监测, issue 20): the devices of the SensorThings API (Things with a
// Location) as points coloured by state - the level of their highest open alarm, green while
// they report with no alarm open, grey when silent - labelled with their latest value; the open
// alarms, newest first, with an acknowledge button, kept live by the alarm stream (GET
// /alarms/stream, Server-Sent Events); a click on a device charts its values
// (monitoring-chart.js). The latest values are read again every 30 s while the panel is open.
"use strict";

(function monitoringTool() {
  const cim = window.cim;
  const kit = cim.toolkit;
  const { span } = window.i18n;
  // device states, labelled by monitoring.state.*; alarm levels share their colours
  const STATE_COLOURS = { alarm: "#ff2d2d", warning: "#ff8c00", notice: "#ffd400", normal: "#2ecc40", silent: "#9e9e9e" };
  const LEVELS = ["notice", "warning", "alarm"]; // rising
  const SILENT_MS = 3_600_000; // no value for an hour: silent
  const REFRESH_MS = 30_000;
  const RETRY_MS = 1000; // the stream's own retry hint
  const THINGS = "/sta/v1.1/Things?$top=1000&$expand=" + encodeURIComponent(
    "Locations($top=1),Datastreams($top=50;$expand=Observations($top=1;$orderby=phenomenonTime desc))");
  const source = new Cesium.CustomDataSource("monitoring");
  const state = { active: false, devices: new Map(), alarms: new Map(), stream: null, timer: null, streaming: false, events: [] };
  let endpoints = {};

  // ---- devices --------------------------------------------------------------------------------
  function position(geometry) {
    // a Location's point (or the mean of its coordinates); null without one
    if (!geometry || !geometry.coordinates) return null;
    const flat = [];
    const walk = (c) => (typeof c[0] === "number" ? flat.push(c) : c.forEach(walk));
    walk(geometry.coordinates);
    if (!flat.length) return null;
    const mean = (i) => flat.reduce((sum, c) => sum + (c[i] ?? 0), 0) / flat.length;
    return { lon: mean(0), lat: mean(1), z: flat[0].length > 2 ? mean(2) : null };
  }

  function device(thing) {
    const located = (thing.Locations || []).map((l) => position(l.location)).find(Boolean);
    return {
      id: thing["@iot.id"],
      name: thing.name,
      utility: (thing.properties || {})["cim:utility"] || null,
      position: located || null,
      datastreams: (thing.Datastreams || []).map((d) => {
        const latest = (d.Observations || [])[0];
        return {
          id: d["@iot.id"],
          name: d.name,
          unit: (d.unitOfMeasurement || {}).symbol || "",
          latest: latest ? { time: Date.parse(latest.phenomenonTime.split("/")[0]), value: latest.result } : null,
        };
      }),
    };
  }

  function openAlarms(thingId) {
    return [...state.alarms.values()].filter((a) => a.thing_id === thingId && a.state !== "cleared");
  }

  function stateOf(found) {
    const levels = openAlarms(found.id).map((a) => LEVELS.indexOf(a.level));
    if (levels.length && Math.max(...levels) >= 0) return LEVELS[Math.max(...levels)];
    const newest = Math.max(0, ...found.datastreams.map((d) => (d.latest ? d.latest.time : 0)));
    return Date.now() - newest <= SILENT_MS ? "normal" : "silent";
  }

  function mainStream(found) {
    // the datastream of the highest open alarm, else the first with a value
    const alarmed = openAlarms(found.id).sort((a, b) => LEVELS.indexOf(b.level) - LEVELS.indexOf(a.level))[0];
    return (alarmed && found.datastreams.find((d) => d.id === alarmed.datastream_id))
      || found.datastreams.find((d) => d.latest) || found.datastreams[0] || null;
  }

  function valueText(stream) {
    // "30 %LEL": the latest value in the page's number format, with its unit
    const value = stream.latest.value;
    const shown = typeof value === "number" ? window.i18n.number(value) : JSON.stringify(value);
    return `${shown} ${stream.unit}`.trim();
  }

  function labelText(found) {
    const stream = mainStream(found);
    return stream && stream.latest ? `${found.name}\n${valueText(stream)}` : found.name;
  }

  function paint(found) {
    const status = stateOf(found);
    found.state = status;
    if (!found.entity) return;
    found.entity.point.color = Cesium.Color.fromCssColorString(STATE_COLOURS[status]);
    found.entity.label.text = labelText(found);
    found.entity.properties.state = status;
  }

  function drawDevice(found) {
    const { lon, lat, z } = found.position;
    found.entity = source.entities.add({
      id: `device-${found.id}`,
      name: found.name,
      position: Cesium.Cartesian3.fromDegrees(lon, lat, z ?? 0),
      properties: { thingId: found.id, state: "" },
      point: {
        pixelSize: 13,
        color: Cesium.Color.WHITE,
        outlineColor: Cesium.Color.BLACK,
        outlineWidth: 1.5,
        heightReference: z === null ? Cesium.HeightReference.CLAMP_TO_GROUND : Cesium.HeightReference.NONE,
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
      },
      label: {
        text: "",
        font: "12px sans-serif",
        fillColor: Cesium.Color.WHITE,
        showBackground: true,
        backgroundColor: Cesium.Color.BLACK.withAlpha(0.6),
        pixelOffset: new Cesium.Cartesian2(10, -10),
        horizontalOrigin: Cesium.HorizontalOrigin.LEFT,
        verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
        heightReference: z === null ? Cesium.HeightReference.CLAMP_TO_GROUND : Cesium.HeightReference.NONE,
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
        distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, 5000),
      },
    });
    found.entity.cimDescribe = () => describe(found);
    paint(found);
  }

  async function loadDevices() {
    const answer = await kit.getJson(THINGS);
    state.devices = new Map(answer.value.map((thing) => [thing["@iot.id"], device(thing)]));
    // drawn again (points and labels cost no worker round trip): moved devices move too
    source.entities.suspendEvents();
    source.entities.removeAll();
    for (const found of state.devices.values()) if (found.position) drawDevice(found);
    source.entities.resumeEvents();
    cim.viewer.scene.requestRender();
  }

  async function loadAlarms() {
    const alarms = await kit.getJson(`${endpoints.alarms}?state=open&limit=1000`);
    state.alarms = new Map(alarms.map((a) => [a.id, a]));
  }

  async function refresh() {
    await loadAlarms();
    await loadDevices();
    renderAlarms();
    const located = [...state.devices.values()].filter((d) => d.position).length;
    kit.hint(located ? "monitoring.hint" : "monitoring.none", { count: located });
  }

  // ---- a device's panel -------------------------------------------------------------------------
  function describe(found) {
    const stream = mainStream(found);
    cim.showProperties(found.name, [["monitoring.device", {
      "monitoring.stateRow": kit.swatchText(STATE_COLOURS[found.state], span(`monitoring.state.${found.state}`)),
      "monitoring.utility": found.utility ? (kit.className(found.utility) || found.utility) : undefined,
      "monitoring.latest": stream && stream.latest ? valueText(stream) : undefined,
      "monitoring.latestAt": stream && stream.latest ? new Date(stream.latest.time).toISOString() : undefined,
      "monitoring.openAlarms": openAlarms(found.id).length,
    }]]);
    cim.lastDeviceShown = found.id;
    cim.monitoringChart.show(found, stream ? stream.id : null, "day");
  }

  // ---- alarms -----------------------------------------------------------------------------------
  function alarmItem(alarm) {
    const li = document.createElement("li");
    li.className = `alarm ${alarm.state}`;
    Object.assign(li.dataset, { alarmId: String(alarm.id), level: alarm.level, state: alarm.state, thingId: String(alarm.thing_id) });
    const what = document.createElement("span");
    what.className = "what";
    const value = alarm.value === null || alarm.value === undefined ? "" : ` = ${window.i18n.number(alarm.value)}`;
    what.textContent = `${alarm.datastream_name}${value}`;
    const when = document.createElement("span");
    when.className = "muted";
    when.textContent = window.i18n.date(alarm.raised_at);
    li.append(kit.swatchText(STATE_COLOURS[alarm.level], span(`monitoring.level.${alarm.level}`)), " ", what, " ", when);
    if (alarm.state === "raised") {
      const button = document.createElement("button");
      button.className = "acknowledge";
      window.i18n.set(button, "monitoring.acknowledge");
      button.addEventListener("click", () => acknowledge(alarm.id, button));
      li.append(button);
    } else {
      li.append(" ", span("monitoring.acknowledged"));
    }
    return li;
  }

  function renderAlarms() {
    const list = document.getElementById("monitoring-alarms");
    const open = [...state.alarms.values()].filter((a) => a.state !== "cleared")
      .sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at) || b.id - a.id);
    list.replaceChildren(...open.map(alarmItem));
    window.i18n.set(document.getElementById("monitoring-alarm-count"), "monitoring.alarms", { count: open.length });
    document.getElementById("monitoring-no-alarms").hidden = open.length > 0;
  }

  async function acknowledge(alarmId, button) {
    button.disabled = true;
    try {
      const answer = await kit.postJson(`/alarms/${alarmId}/acknowledge`);
      onAlarm({ ...answer, event: "acknowledged" });
      kit.hint("monitoring.acknowledgedHint", { id: alarmId });
    } catch (error) {
      button.disabled = false;
      kit.failed("monitoring.acknowledgeFailed", error);
    }
  }

  // One change from the stream (or an answer of ours): the list, the device's colour and value.
  function onAlarm(alarm) {
    state.events.push({ id: alarm.id, event: alarm.event, state: alarm.state });
    const known = state.alarms.get(alarm.id);
    if (known && Date.parse(known.updated_at) > Date.parse(alarm.updated_at)) return; // older news
    if (alarm.state === "cleared") state.alarms.delete(alarm.id);
    else state.alarms.set(alarm.id, alarm);
    const found = state.devices.get(alarm.thing_id);
    const stream = found && found.datastreams.find((d) => d.id === alarm.datastream_id);
    const observed = alarm.observed_at ? Date.parse(alarm.observed_at) : null;
    if (stream && observed !== null && alarm.value !== null && (!stream.latest || stream.latest.time <= observed)) {
      stream.latest = { time: observed, value: alarm.value };
    }
    if (found) paint(found);
    renderAlarms();
    cim.viewer.scene.requestRender();
  }

  // EventSource cannot send the X-API-Key header, without which the stream leaves out the
  // alarms of gas and power devices: the same text/event-stream is read with fetch.
  async function readStream(signal) {
    const key = sessionStorage.getItem("cim-api-key");
    const headers = { Accept: "text/event-stream", ...(key ? { "X-API-Key": key } : {}) };
    const response = await fetch(endpoints.stream, { headers, signal });
    if (!response.ok) throw new Error(window.i18n.t("error.httpStatus", { status: response.status }));
    state.streaming = true;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data && lines.includes("event: alarm")) onAlarm(JSON.parse(data));
      }
    }
  }

  function openStream() {
    const controller = new AbortController();
    state.stream = controller;
    (async () => {
      while (!controller.signal.aborted) {
        await readStream(controller.signal).catch(() => null);
        state.streaming = false;
        if (controller.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        // changes made while the stream was down: the list is read again
        if (!controller.signal.aborted) await refresh().catch(() => null);
      }
    })();
  }

  // ---- the tool ---------------------------------------------------------------------------------
  function options() {
    const box = document.createElement("div");
    box.id = "monitoring-options";
    const heading = document.createElement("h3");
    heading.id = "monitoring-alarm-count";
    window.i18n.set(heading, "monitoring.alarms", { count: 0 });
    const list = document.createElement("ul");
    list.id = "monitoring-alarms";
    const none = kit.note("monitoring.noAlarms");
    none.id = "monitoring-no-alarms";
    box.append(heading, list, none);
    return box;
  }

  async function start() {
    state.active = true;
    cim.describable = true; // a click on a device charts it (app.js)
    source.show = true;
    kit.legend("monitoring", Object.keys(STATE_COLOURS).map((s) => [STATE_COLOURS[s], `monitoring.state.${s}`]));
    kit.hint("monitoring.loading");
    openStream(); // first, so no change between the reads below and the stream is missed
    try {
      await refresh();
    } catch (error) {
      kit.failed("monitoring.failed", error);
    }
    if (state.active) state.timer = setInterval(() => refresh().catch(() => null), REFRESH_MS);
    cim.monitoringReady = state.active;
  }

  function end() {
    if (!state.active) return;
    state.active = false;
    cim.monitoringReady = false;
    cim.describable = false;
    if (state.stream) state.stream.abort();
    clearInterval(state.timer);
    state.streaming = false;
    source.entities.removeAll();
    state.devices = new Map();
    state.alarms = new Map();
    kit.legend("monitoring", null);
    cim.viewer.scene.requestRender();
  }

  async function install() {
    const [alarms, stream, series] = await Promise.all([
      kit.endpoint("alarms", "GET", "/alarms"),
      kit.endpoint("alarmStream", "GET", "/alarms/stream"),
      kit.endpoint("series", "GET", "/sensors/datastreams/{datastream_id}/series"),
    ]);
    endpoints = { alarms, stream, series };
    if (!alarms || !stream || !series) return;
    await cim.viewer.dataSources.add(source);
    const key = document.getElementById("api-key");
    // offered where there are devices (a city of shelters only keeps its own tools); a key may
    // show devices of gas and power that an anonymous page does not see
    let offered = false;
    const offer = async () => {
      if (offered) return;
      const things = await kit.getJson("/sta/v1.1/Things?$top=1&$select=id").catch(() => ({ value: [] }));
      if (offered || !things.value.length) return;
      offered = true;
      kit.addTool("monitoring", "tool.monitoring", start, options());
    };
    await offer();
    key.addEventListener("change", offer);
    // a new key shows what it may see (gas and power devices): read again, stream again
    key.addEventListener("change", () => {
      if (!state.active) return;
      if (state.stream) state.stream.abort();
      openStream();
      refresh().catch((error) => kit.failed("monitoring.failed", error));
    });
    cim.monitoringToolReady = true;
  }

  kit.onStop.push(end);
  document.addEventListener("cim-locale", () => {
    if (state.active) renderAlarms(); // their dates in the new language
  });
  // For scripts and the browser tests: the state, the colours and the device panel.
  cim.monitoring = {
    state, colours: STATE_COLOURS, refresh, describe: (id) => describe(state.devices.get(id)),
    get streaming() {
      return state.streaming;
    },
  };

  const run = () => install().catch((error) => console.warn(`cim viewer: monitoring: ${error.message}`));
  if (cim.ready) run();
  else document.addEventListener("cim-ready", run, { once: true });
})();
