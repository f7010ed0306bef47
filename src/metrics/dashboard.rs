//! The QoS dashboard page served at `/` (HTTP thread).
//!
//! Self-contained (no external assets): it polls
//! `/service/mixeradminclient?getMetrics` once a second with `fetch()` and renders the
//! key figures and the track tables. Text is inserted with `textContent`, never as HTML,
//! so track and user names cannot inject markup.

/// The dashboard page.
pub(crate) const DASHBOARD_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>izyrt QoS</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.5em; }
.figs { display: flex; flex-wrap: wrap; gap: .8em; }
.fig { border: 1px solid #ccc; border-radius: 6px; padding: .5em .8em; min-width: 10em; }
.fig b { display: block; font-size: 1.4em; }
.green, .running { color: #080; } .red, .stopped { color: #b00; } .connecting { color: #b70; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
#err { color: #b00; }
</style>
</head>
<body>
<h1>izyrt QoS <small id="err"></small></h1>
<div class="figs" id="figs"></div>
<h2>Incoming tracks</h2><table id="incoming"></table>
<h2>Outgoing tracks</h2><table id="outgoing"></table>
<h2>Realtime threads</h2><table id="realtime"></table>
<script>
"use strict";
const FIGS = [
  ["aggregatorStatus", "aggregator"], ["micStatus", "mic"],
  ["currentSpeakerBufferDepthInFloat32Samples", "speaker buffer (samples)"],
  ["currentSpeakerSampleRate", "speaker rate (Hz)"],
  ["speakerScriptProcessorLatencyMS", "speaker latency (ms)"],
  ["speakerScriptProcessorIncomingBufferMisses", "buffer misses"],
  ["speakerSilenceDetected", "silence"]];
const IN_COLS = ["track", "from", "connected", "seq", "packets", "seqGaps", "msSinceSeqAdvance", "latencyMs"];
const OUT_COLS = ["track", "to", "seq", "packets", "droppedPackets"];
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function show(v) { return v === undefined || v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)); }
function table(id, cols, rows) {
  const t = document.getElementById(id);
  t.replaceChildren();
  const head = el("tr");
  cols.forEach(c => head.appendChild(el("th", c)));
  t.appendChild(head);
  rows.forEach(r => {
    const tr = el("tr");
    cols.forEach(c => tr.appendChild(el("td", show(r[c]))));
    t.appendChild(tr);
  });
}
async function poll() {
  try {
    const r = await fetch("/service/mixeradminclient?getMetrics", { cache: "no-store" });
    const s = await r.json();
    const figs = document.getElementById("figs");
    figs.replaceChildren();
    FIGS.forEach(([k, label]) => {
      const d = el("div", undefined, "fig");
      d.appendChild(el("b", show(s[k]), typeof s[k] === "string" ? s[k] : ""));
      d.appendChild(el("span", label));
      figs.appendChild(d);
    });
    table("incoming", IN_COLS, Array.isArray(s.incomingAudioTracks) ? s.incomingAudioTracks : []);
    table("outgoing", OUT_COLS, Array.isArray(s.outgoingAudioTracks) ? s.outgoingAudioTracks : []);
    const rt = s.realtime && typeof s.realtime === "object" ? s.realtime : {};
    const rows = Array.isArray(rt) ? rt : Object.entries(rt).map(([k, v]) => Object.assign({ thread: k }, v));
    const cols = ["thread"];
    rows.forEach(r => Object.keys(r).forEach(k => { if (!cols.includes(k)) cols.push(k); }));
    table("realtime", cols, rows);
    document.getElementById("err").textContent = "";
  } catch (e) {
    document.getElementById("err").textContent = "(no data: " + e + ")";
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"#;
