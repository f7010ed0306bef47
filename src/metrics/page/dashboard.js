// izyrt dashboard: polls getMetrics once a second and renders what fits the role.
//
// Every text from the snapshot goes in with textContent (user names are untrusted); no
// innerHTML anywhere. The page keeps its own history (300 polls = 5 minutes) for the
// trend plots. After each render it sets, on <html>: data-role, data-polls (renders so
// far) and data-fits ("true" when the page is no wider than the window), which the
// browser test reads from the dumped DOM.
"use strict";

const METRICS = "/service/mixeradminclient?getMetrics";
const POLL_MS = 1000;
const KEEP = 300;
const WINDOW_S = 300;
const METER_FLOOR_DB = -60;
const STATUSES = ["connecting", "running", "stopped"];

/** History: per user and per RT thread, {t: [], v: []} series of at most KEEP points. */
const history = { users: new Map(), threads: new Map(), polls: 0, start: null };

/** Seconds the plots' x axis covers: the history so far (at least 10 s), at most 5 minutes. */
function span(now) { return Math.min(WINDOW_S, Math.max(10, (now - (history.start ?? now)) / 1000)); }

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** A finite number, or null. */
function num(v) { return typeof v === "number" && Number.isFinite(v) ? v : null; }
function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : {}; }
function str(v) { return typeof v === "string" ? v : null; }

/** `v` rounded to `digits` with `unit`, or "n/a". */
function fmt(v, digits, unit) {
  const n = num(v);
  if (n === null) return "n/a";
  let t = n.toFixed(digits);
  if (/^-0(\.0+)?$/.test(t)) t = t.slice(1);
  return t + (unit ? " " + unit : "");
}
function count(v) { const n = num(v); return n === null ? "n/a" : String(Math.round(n)); }
function yesNo(v) { return typeof v === "boolean" ? (v ? "yes" : "no") : "n/a"; }

/** "3 h 02 min", "4 min 05 s", "12 s". */
function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}
function clock(unixMs) { return new Date(unixMs).toLocaleTimeString("en-GB", { hour12: false }); }

function series() { return { t: [], v: [] }; }
function push(s, t, v) {
  s.t.push(t);
  s.v.push(v);
  if (s.t.length > KEEP) { s.t.shift(); s.v.shift(); }
}

/** A small plot of `s` over the last span(now) seconds (`limit`: a dashed line, e.g. a period). */
function plot(s, now, label, attrs, limit) {
  const W = 300, H = 28, seconds = span(now), perSecond = W / seconds;
  const svg = svgEl("svg", Object.assign({ class: "plot", viewBox: "0 0 " + W + " " + H,
    preserveAspectRatio: "none", role: "img", "aria-label": label }, attrs));
  let max = limit === undefined ? 0 : limit * 1.25;
  for (const v of s.v) if (v !== null && v > max) max = v;
  if (max <= 0) max = 1;
  const y = v => (H - 1 - (v / max) * (H - 3)).toFixed(1);
  let d = "", points = 0, pen = false;
  for (let i = 0; i < s.t.length; i++) {
    const v = s.v[i], age = (now - s.t[i]) / 1000;
    if (v === null || age > seconds) { pen = false; continue; }
    const x = (W - age * perSecond).toFixed(1);
    d += (pen ? "L" : "M") + x + " " + y(v) + " ";
    pen = true;
    points++;
  }
  svg.setAttribute("data-points", String(points));
  svg.setAttribute("data-max", max.toPrecision(3));
  if (limit !== undefined) svg.appendChild(svgEl("path", { class: "limit", d: "M0 " + y(limit) + " H" + W }));
  if (d) svg.appendChild(svgEl("path", { class: "line", d: d.trim() }));
  svg.appendChild(svgEl("title", {})).textContent = label + ", max " + max.toPrecision(3);
  return svg;
}

/** A level meter: peak and RMS bars over METER_FLOOR_DB..0 dBFS, numbers, clip/silent marks. */
function meter(peak, rms, clipping, silent, clipped) {
  const box = el("div", undefined, "level");
  const m = el("div", undefined, "meter" + (clipping ? " clip" : "") + (silent ? " silent" : ""));
  const pct = db => Math.max(0, Math.min(100, (1 - db / METER_FLOOR_DB) * 100)).toFixed(1) + "%";
  const p = el("div", undefined, "peak"), r = el("div", undefined, "rms");
  p.style.width = num(peak) === null ? "0%" : pct(peak);
  r.style.width = num(rms) === null ? "0%" : pct(rms);
  m.append(p, r);
  const text = el("div", undefined, "level-text");
  text.appendChild(el("span", fmt(peak, 1) + " / " + fmt(rms, 1) + " dBFS", "level-value"));
  if (silent) text.appendChild(el("span", "silent", "mark silent"));
  if (clipping) text.appendChild(el("span", "clip", "mark clip"));
  if (num(clipped)) text.appendChild(el("span", count(clipped) + " clipped", "mark clip"));
  box.append(m, text);
  return box;
}

function card(parent, label, value, cls) {
  const c = el("div", undefined, "card" + (cls ? " " + cls : ""));
  const b = el("b");
  if (value instanceof Node) b.appendChild(value); else b.textContent = value;
  c.append(b, el("span", label));
  parent.appendChild(c);
  return c;
}

function renderHeader(s, role, user) {
  const title = "izyrt " + (role || "") + (role !== "hub" && user ? " " + user : "") + " — QoS";
  document.title = title;
  $("title").textContent = title;
  const status = str(s.aggregatorStatus) || "n/a";
  const agg = $("aggregator");
  agg.textContent = status;
  agg.className = STATUSES.includes(status) ? status : "";
  const conn = user ? obj(obj(s.connections)[user]) : {};
  const why = status !== "running" && str(conn.lastError) ? "(" + conn.lastError + ")" : "";
  $("why").textContent = why;
  $("updated").textContent = "updated " + clock(Date.now());
}

/** Peer, monitor, dev: the client's own link to the hub. */
function renderLink(s, role, user) {
  const box = $("link");
  box.replaceChildren();
  const conn = obj(obj(s.connections)[user]);
  const levels = obj(s.levels);
  const rate = num(s.currentSpeakerSampleRate), ch = num(conn.channels);
  const depth = num(s.currentSpeakerBufferDepthInFloat32Samples);
  const depthMs = depth !== null && rate && ch ? depth / ch / rate * 1000 : null;
  const status = str(s.aggregatorStatus) || "n/a";
  card(box, "hub" + (status !== "running" && str(conn.lastError) ? ": " + conn.lastError : ""), status,
    STATUSES.includes(status) ? status : "");
  if (role !== "monitor") card(box, "mic", str(s.micStatus) || "n/a", s.micStatus === "green" ? "green" : "red");
  card(box, "speaker latency (ms)", fmt(s.speakerScriptProcessorLatencyMS, 1));
  card(box, "speaker buffer (samples, ms)", count(depth) + " · " + fmt(depthMs, 1, "ms"));
  card(box, "speaker misses", count(s.speakerScriptProcessorIncomingBufferMisses));
  card(box, "misses since start", count(conn.missesTotal));
  card(box, "round trip (ms)", fmt(conn.rttMs, 1));
  card(box, "clock vs hub (ppm)", fmt(s.clockRatioPpm, 1) + (s.locked === true ? " locked" : ""));
  card(box, "concealed frames", count(s.concealedFrames));
  card(box, "speaker silent", yesNo(s.speakerSilenceDetected));
  if (role !== "monitor") {
    card(box, "mic level", meter(levels.micPeakDbfs, levels.micRmsDbfs, false, false), "meter-card");
  }
  card(box, "speaker level", meter(levels.speakerPeakDbfs, levels.speakerRmsDbfs, false, false), "meter-card");
  $("link-title").textContent = "This " + (role === "monitor" ? "monitor" : "peer") + "'s link to the hub";
}

/** Hub and dev: the hub's own figures (no mic or speaker: none shown). */
function renderHub(s) {
  const box = $("hub");
  box.replaceChildren();
  const hub = obj(s.hub), refused = obj(s.refusedConnections);
  card(box, "clients", count(hub.clients) + " / " + count(hub.maxClients));
  card(box, "miss periods", count(hub.missPeriods));
  card(box, "widest miss (inputs)", count(hub.widestMiss));
  card(box, "refused connections", count(num(refused.total) ?? hub.refused));
  card(box, "mix", str(hub.mix) || "n/a");
  card(box, "uptime", num(hub.uptimeSeconds) === null ? "n/a" : duration(hub.uptimeSeconds * 1000));
  card(box, "listening on", str(hub.listen) || "n/a");
  card(box, "session", str(hub.session) || "n/a");
}

/** The session table: one row per user, from `sessions`. */
function renderSessions(sessions, now) {
  const body = $("sessions-body");
  body.replaceChildren();
  const users = Object.keys(sessions).sort();
  if (!users.length) {
    const tr = el("tr");
    const td = el("td", "no sessions");
    td.colSpan = 11;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  for (const user of users) {
    const u = obj(sessions[user]);
    const qos = u.QOSMetrics && typeof u.QOSMetrics === "object" ? u.QOSMetrics : null;
    // A monitor sends no audio: whatever its entry says about input levels does not apply.
    const input = u.role !== "monitor" && u.audioInputMetadata && typeof u.audioInputMetadata === "object"
      ? u.audioInputMetadata : null;
    const connected = u.connected === true;
    const glitching = (num(u.hubMisses10s) || 0) > 0;
    const silent = input !== null && input.silent === true;
    const tr = el("tr");
    tr.setAttribute("data-user", user);
    tr.className = [connected ? "connected" : "left", glitching ? "glitching" : "", silent ? "silent" : ""]
      .filter(Boolean).join(" ");
    const name = el("td", user, "user");
    if (glitching) name.appendChild(el("span", "glitching", "mark glitch"));
    tr.appendChild(name);
    tr.appendChild(el("td", str(u.role) || "n/a", "role"));
    let state;
    if (connected) {
      state = "connected" + (num(u.since) !== null ? " " + duration(now - u.since) : "");
    } else {
      state = "left";
      if (num(u.leftAt) !== null) state += " at " + clock(u.leftAt) + " (" + duration(now - u.leftAt) + " ago)";
      state += ": " + (str(u.leftReason) || "reason unknown");
    }
    tr.appendChild(el("td", state, "state"));
    tr.appendChild(el("td", count(u.hubMisses10s), "misses10"));
    tr.appendChild(el("td", count(u.hubMisses), "misses"));
    // What the sender's own device lost (sent as gaps): of the hub's misses, those that are
    // not the network's.
    tr.appendChild(el("td", fmt(u.senderSkippedMs, 0), "sender-lost"));
    tr.appendChild(el("td", qos ? count(qos.incomingBufferMisses) : "n/a", "peer-misses"));
    tr.appendChild(el("td", qos ? fmt(qos.latencyMs, 1) : "n/a", "peer-latency"));
    tr.appendChild(el("td", fmt(u.rttMs, 1), "rtt"));
    // Whether the sender resamples to the hub's clock (its packets say so): a peer that
    // does not lock drifts, and the hub trims it or runs it dry.
    const drift = el("td", fmt(u.driftPpm, 0), "drift");
    // A client measures its clock for about 9 s before it locks: "locking" until 20 s.
    const young = num(u.since) !== null && now - u.since < 20000;
    if (u.senderLocked === true) drift.appendChild(el("span", "locked", "mark locked"));
    else if (u.senderLocked === false && connected) {
      drift.appendChild(young ? el("span", "locking", "mark locking") : el("span", "not locked", "mark unlocked"));
    }
    // The peer's own estimate of its sound card against the hub's clock (its QOS), on
    // hover: `clockRatioPpm` is the hub against the card, so the card's error is its
    // negation.
    const hubVsCard = qos ? num(qos.clockRatioPpm) : null;
    if (hubVsCard !== null) drift.title = "sound card " + fmt(-hubVsCard, 0, "ppm") + " against the hub's clock (its QOS)";
    // Where its input stands against the hub's target (`jitterExcessFrames`): an izyrt
    // client steers its capture to bring it to 0, which the drift shows while it lasts.
    const excess = num(u.jitterExcessFrames);
    if (excess !== null) {
      const at = "its input at the hub " + fmt(excess, 0, "frames") + " from its target";
      drift.title = drift.title ? drift.title + "; " + at : at;
    }
    tr.appendChild(drift);
    const level = el("td", undefined, "level-cell");
    if (input) level.appendChild(meter(input.peakDbfs, input.rmsDbfs, input.clipping === true, silent, input.clippedSamples));
    else level.textContent = "n/a";
    tr.appendChild(level);
    body.appendChild(tr);
  }
}

/** Adds this poll's points to every user's and thread's history; forgets the forgotten. */
function record(s, sessions, now) {
  for (const user of [...history.users.keys()]) if (!(user in sessions)) history.users.delete(user);
  for (const [user, raw] of Object.entries(sessions)) {
    const u = obj(raw);
    let h = history.users.get(user);
    if (!h) {
      h = { misses: series(), latency: series(), rtt: series(), last: null };
      history.users.set(user, h);
    }
    const total = num(u.hubMisses);
    let rate = null;
    if (total !== null && h.last && now > h.last.t) rate = Math.max(0, total - h.last.total) / ((now - h.last.t) / 1000);
    h.last = total === null ? null : { t: now, total };
    const qos = u.QOSMetrics && typeof u.QOSMetrics === "object" ? u.QOSMetrics : {};
    push(h.misses, now, rate);
    push(h.latency, now, num(qos.latencyMs));
    push(h.rtt, now, num(u.rttMs));
    h.connected = u.connected === true;
  }
  const rt = obj(s.realtime);
  for (const name of [...history.threads.keys()]) if (!(name in rt)) history.threads.delete(name);
  for (const [name, raw] of Object.entries(rt)) {
    const r = obj(raw);
    if (!history.threads.has(name)) history.threads.set(name, series());
    push(history.threads.get(name), now, num(r.p999Us) ?? num(r.maxUs));
  }
}

function trendRow(parent, label, s, now, unit, digits, attrs, limit) {
  const row = el("div", undefined, "row");
  const last = s.v.length ? s.v[s.v.length - 1] : null;
  row.append(el("span", label), plot(s, now, label, attrs, limit), el("span", fmt(last, digits, unit), "now"));
  parent.appendChild(row);
}

function renderTrends(now) {
  $("trends-title").textContent = "Trends, last " + duration(span(now) * 1000) + " (up to 5 minutes)";
  const box = $("trends");
  box.replaceChildren();
  for (const user of [...history.users.keys()].sort()) {
    const h = history.users.get(user);
    const t = el("div", undefined, "trend" + (h.connected ? "" : " left"));
    t.setAttribute("data-user", user);
    t.appendChild(el("h3", user));
    trendRow(t, "misses/s", h.misses, now, "", 1, { "data-user": user, "data-series": "misses" });
    trendRow(t, "latency (ms)", h.latency, now, "ms", 1, { "data-user": user, "data-series": "latency" });
    trendRow(t, "round trip (ms)", h.rtt, now, "ms", 1, { "data-user": user, "data-series": "rtt" });
    box.appendChild(t);
  }
}

/** A thread's period in µs, from its period frames and the stream rate. */
function periodUs(r, s) {
  const frames = num(r.periodFrames), rate = num(r.sampleRate) ?? num(s.currentSpeakerSampleRate);
  return frames && rate ? frames / rate * 1e6 : null;
}

function renderRealtime(s, now) {
  const body = $("realtime-body");
  body.replaceChildren();
  const plots = $("rt-trends");
  plots.replaceChildren();
  for (const [name, raw] of Object.entries(obj(s.realtime)).sort()) {
    const r = obj(raw);
    const period = periodUs(r, s);
    const policy = str(r.policy) || "n/a";
    const tr = el("tr");
    tr.setAttribute("data-thread", name);
    tr.appendChild(el("td", name));
    const rt = policy === "SCHED_FIFO" || policy === "SCHED_RR";
    const cell = el("td", policy + (num(r.priority) !== null ? " " + r.priority : ""), rt ? "" : "warn");
    // A device with its own thread (native JACK) runs this thread's periods there: say so,
    // with that thread's priority (0: not realtime), since that is the one that must be high.
    if (r.deviceThread && typeof r.deviceThread === "object") {
      const p = num(r.deviceThread.priority);
      const on = el("span", " · on the device's thread" + (p ? " at " + p : ", not realtime"),
        p ? "device-thread" : "device-thread warn");
      on.title = "the device (native JACK) runs this thread's periods on its own thread";
      cell.appendChild(on);
    }
    tr.appendChild(cell);
    tr.appendChild(el("td", str(r.device) || "n/a"));
    tr.appendChild(el("td", count(r.periodFrames) + " fr · " + fmt(period, 0, "µs")));
    tr.appendChild(el("td", count(r.wakeups)));
    tr.appendChild(el("td", fmt(r.p50Us, 1)));
    tr.appendChild(el("td", fmt(r.p99Us, 1)));
    const late = period !== null && num(r.p999Us) !== null && r.p999Us > period;
    tr.appendChild(el("td", fmt(r.p999Us, 1), late ? "warn" : ""));
    tr.appendChild(el("td", fmt(r.maxUs, 1)));
    // The thread's own work per period: past half the period it is running out of time.
    const work = obj(r.work);
    const busy = period !== null && num(work.p999Us) !== null && work.p999Us > period / 2;
    const workCell = el("td", fmt(work.p999Us, 1) + " / " + fmt(work.maxUs, 1), busy ? "warn" : "");
    workCell.setAttribute("data-series", "work");
    tr.appendChild(workCell);
    tr.appendChild(el("td", count(r.xruns), (num(r.xruns) || 0) > 0 ? "warn" : ""));
    tr.appendChild(el("td", count(r.lostFrames)));
    tr.appendChild(el("td", str(r.state) || "n/a"));
    // Steady allocations (a bug when above 0), then what the device's recoveries allocated,
    // unwarned: an ALSA plugin's restart allocates by itself (izyrt's own recovery does not).
    const allocs = el("td", count(r.steadyAllocations) + " / " + count(r.recoveryAllocations),
      (num(r.steadyAllocations) || 0) > 0 ? "warn" : "");
    allocs.setAttribute("data-series", "allocations");
    tr.appendChild(allocs);
    body.appendChild(tr);
    const h = history.threads.get(name);
    if (h) {
      const t = el("div", undefined, "trend");
      t.appendChild(el("h3", name));
      trendRow(t, "wakeup p99.9 (µs)", h, now, "µs", 0, { "data-thread": name, "data-series": "wakeup" },
        period === null ? undefined : period);
      plots.appendChild(t);
    }
  }
}

function renderTracks(id, cols, rows) {
  const t = $(id);
  t.replaceChildren();
  const head = el("tr");
  cols.forEach(c => head.appendChild(el("th", c)));
  t.appendChild(head);
  for (const r of Array.isArray(rows) ? rows : []) {
    const tr = el("tr");
    cols.forEach(c => {
      const v = obj(r)[c];
      tr.appendChild(el("td", typeof v === "number" && !Number.isInteger(v) ? fmt(v, 1) : v == null ? "n/a" : String(v)));
    });
    t.appendChild(tr);
  }
}

function render(s) {
  const now = Date.now();
  const role = str(s.role) || "";
  const user = str(s.user);
  const sessions = obj(s.sessions);
  if (history.start === null) history.start = now;
  record(s, sessions, now);
  renderHeader(s, role, user);
  const client = role === "peer" || role === "monitor" || role === "dev";
  $("link-section").hidden = !client;
  if (client) renderLink(s, role, user);
  $("hub-section").hidden = !(role === "hub" || role === "dev");
  if (role === "hub" || role === "dev") renderHub(s);
  $("sessions-title").textContent = role === "hub" ? "Sessions" : "Sessions (the hub's, from METADATA)";
  renderSessions(sessions, now);
  renderTrends(now);
  renderRealtime(s, now);
  renderTracks("incoming", ["track", "from", "connected", "seq", "packets", "seqGaps", "msSinceSeqAdvance", "latencyMs"],
    s.incomingAudioTracks);
  renderTracks("outgoing", ["track", "to", "seq", "packets", "droppedPackets"], s.outgoingAudioTracks);
  const root = document.documentElement;
  history.polls++;
  root.setAttribute("data-role", role);
  root.setAttribute("data-polls", String(history.polls));
  root.setAttribute("data-fits", String(root.scrollWidth <= root.clientWidth));
}

async function poll() {
  try {
    const r = await fetch(METRICS, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    $("err").textContent = "";
  } catch (e) {
    $("err").textContent = "(no data: " + e + ")";
  }
  setTimeout(poll, POLL_MS);
}

poll();
