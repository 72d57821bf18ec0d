// The web page's script (a file, not inline: the Content-Security-Policy allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "speakerverify.apiKey";
const state = { key: localStorage.getItem(KEY_STORAGE) || "", admin: false, clip: null, recordedClips: [] };

function setStatus(el, html, cls) {
  el.className = "status" + (cls ? " " + cls : "");
  el.innerHTML = html;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function fmt(x) { return (typeof x === "number") ? x.toFixed(3) : "-"; }

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body });
  } catch (e) {
    throw new Error("cannot reach the service (" + e.message + ")");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) ? data.error : ("HTTP " + resp.status);
    const err = new Error(msg); err.status = resp.status; throw err;
  }
  return data;
}

// ---- key and health -------------------------------------------------------------------
async function health() {
  try {
    const h = await api("GET", "/healthz");
    $("health").textContent = "model " + h.model;
  } catch (e) { $("health").textContent = "service unreachable"; }
}

async function useKey(key) {
  state.key = key.trim();
  if (!state.key) { setStatus($("key-status"), "Enter a key.", "warn"); return; }
  try {
    const who = await api("GET", "/v1/whoami");
    localStorage.setItem(KEY_STORAGE, state.key);
    state.admin = !!who.admin;
    setStatus($("key-status"), "Signed in as <b>" + esc(who.key) + "</b> (" + (who.admin ? "admin" : "user") + ").", "ok");
  } catch (e) {
    state.admin = false;
    setStatus($("key-status"), "Key refused: " + esc(e.message), "bad");
  }
  $("enroll-section").hidden = !state.admin;
  await refreshSpeakers();
}

$("key-form").addEventListener("submit", (e) => e.preventDefault());
$("save-key").onclick = () => useKey($("api-key").value);
$("forget-key").onclick = () => {
  localStorage.removeItem(KEY_STORAGE); state.key = ""; state.admin = false; $("api-key").value = "";
  $("enroll-section").hidden = true;
  setStatus($("key-status"), "Key forgotten.", "muted");
  $("speakers-list").textContent = "Enter an API key to see the speakers.";
  $("speaker-select").innerHTML = "";
};

// ---- speakers ---------------------------------------------------------------------------
async function refreshSpeakers() {
  const list = $("speakers-list"), select = $("speaker-select");
  if (!state.key) return;
  let data;
  try { data = await api("GET", "/v1/speakers"); }
  catch (e) { list.innerHTML = '<span class="bad">' + esc(e.message) + "</span>"; return; }
  const current = select.value;
  select.innerHTML = "";
  for (const s of data.speakers) {
    const opt = document.createElement("option"); opt.value = s.name; opt.textContent = s.name; select.appendChild(opt);
  }
  if (current) select.value = current;
  if (!data.speakers.length) { list.innerHTML = '<span class="muted">No speakers enrolled yet.</span>'; return; }
  let html = "<table><tr><th>name</th><th>clips</th><th>seconds</th><th>model</th><th></th></tr>";
  for (const s of data.speakers) {
    html += "<tr><td>" + esc(s.name) + (s.stale ? ' <span class="warn">(stale: re-enroll)</span>' : "") +
      '</td><td class="num">' + s.clips + '</td><td class="num">' + s.duration_s.toFixed(1) +
      "</td><td>" + esc(s.model) + "</td><td>" +
      (state.admin ? '<button class="danger" data-remove="' + esc(s.name) + '">Remove</button>' : "") + "</td></tr>";
  }
  list.innerHTML = html + "</table>";
  for (const b of list.querySelectorAll("button[data-remove]")) {
    b.onclick = async () => {
      const name = b.getAttribute("data-remove");
      if (!confirm("Remove " + name + "?")) return;
      try { await api("DELETE", "/v1/speakers/" + encodeURIComponent(name)); }
      catch (e) { alert(e.message); }
      refreshSpeakers();
    };
  }
}

// ---- the current clip: file or microphone ------------------------------------------------
function setClip(blob, name, seconds) {
  state.clip = { blob, name };
  // A new recording: the verdicts shown were about the last one.
  setStatus($("identify-result"), "", ""); setStatus($("verify-result"), "", "");
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob); player.hidden = false;
  setStatus($("clip-info"), "Current recording: <b>" + esc(name) + "</b>" +
    (seconds ? " (" + seconds.toFixed(1) + " s)" : "") + " " + (blob.size / 1024).toFixed(0) + " KB", "");
}

$("file-input").onchange = (e) => {
  const f = e.target.files[0];
  if (f) setClip(f, f.name, null);
};

// Microphone capture to 16 kHz 16-bit WAV (what every browser's MediaRecorder gives, webm/ogg,
// is not readable by the server's decoder everywhere; raw PCM in a WAV always is).
// The AudioWorklet that taps the microphone is a static file too (a blob: URL would need the CSP to allow blob: scripts).
const WORKLET_URL = "/static/tap-worklet.js";
let rec = null;

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this page needs a secure context (https or localhost) to use the microphone");
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
    noiseSuppression: false, autoGainControl: false } });
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const chunks = [];
  const level = $("level").firstElementChild;
  const onData = (data) => {
    chunks.push(data);
    let peak = 0; for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
    level.style.width = Math.min(100, Math.round(peak * 140)) + "%";
  };
  let node;
  if (ctx.audioWorklet) {
    await ctx.audioWorklet.addModule(WORKLET_URL);
    node = new AudioWorkletNode(ctx, "tap");
    node.port.onmessage = (e) => onData(e.data);
    source.connect(node);
  } else {
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => onData(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(ctx.destination);
  }
  rec = { stream, ctx, source, node, chunks, started: performance.now() };
}

async function stopRecording() {
  const r = rec; rec = null;
  r.source.disconnect(); r.node.disconnect();
  r.stream.getTracks().forEach((t) => t.stop());
  const rate = r.ctx.sampleRate;
  await r.ctx.close();
  $("level").firstElementChild.style.width = "0";
  const n = r.chunks.reduce((a, c) => a + c.length, 0);
  const pcm = new Float32Array(n);
  let off = 0; for (const c of r.chunks) { pcm.set(c, off); off += c.length; }
  const res = await resample(pcm, rate, 16000);
  return { blob: wavBlob(res.data, res.rate), seconds: res.data.length / res.rate };
}

async function resample(pcm, from, to) {
  if (from === to || pcm.length === 0) return { data: pcm, rate: from };
  try {
    const length = Math.max(1, Math.round(pcm.length * to / from));
    const off = new OfflineAudioContext(1, length, to);
    const buf = off.createBuffer(1, pcm.length, from);
    buf.copyToChannel(pcm, 0);
    const src = off.createBufferSource(); src.buffer = buf; src.connect(off.destination); src.start();
    return { data: (await off.startRendering()).getChannelData(0), rate: to };
  } catch (e) {  // keep the native rate; the server resamples
    return { data: pcm, rate: from };
  }
}

function wavBlob(samples, rate) {
  const actualRate = rate;
  const buf = new ArrayBuffer(44 + samples.length * 2), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, actualRate, true);
  v.setUint32(28, actualRate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, "data"); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

let recCount = 0, timer = null;
$("record-btn").onclick = async () => {
  const btn = $("record-btn");
  if (!rec) {
    try { await startRecording(); }
    catch (e) { setStatus($("clip-info"), "Cannot record: " + esc(e.message), "bad"); return; }
    btn.textContent = "Stop"; btn.classList.add("recording");
    timer = setInterval(() => {
      if (rec) setStatus($("clip-info"), "Recording... " + ((performance.now() - rec.started) / 1000).toFixed(1) + " s", "warn");
    }, 200);
  } else {
    clearInterval(timer);
    btn.disabled = true;
    try {
      const { blob, seconds } = await stopRecording();
      recCount += 1;
      $("file-input").value = "";
      setClip(blob, "recording-" + recCount + ".wav", seconds);
    } catch (e) {
      setStatus($("clip-info"), "Recording failed: " + esc(e.message), "bad");
    }
    btn.textContent = "Record"; btn.classList.remove("recording"); btn.disabled = false;
  }
};

function needClip(out) {
  if (!state.clip) { setStatus(out, "First record or choose a recording (step 1).", "warn"); return false; }
  if (!state.key) { setStatus(out, "Enter an API key first.", "warn"); return false; }
  return true;
}

// ---- identify and verify ------------------------------------------------------------------
$("identify-btn").onclick = async () => {
  const out = $("identify-result");
  if (!needClip(out)) return;
  const form = new FormData(); form.append("file", state.clip.blob, state.clip.name); form.append("top", "5");
  setStatus(out, "Identifying...", "muted");
  try {
    const r = await api("POST", "/v1/identify", form);
    let html = r.speaker === "unknown"
      ? '<div class="verdict warn">Unknown speaker</div><div class="muted">No enrolled speaker passes the threshold (' + fmt(r.threshold) + ").</div>"
      : '<div class="verdict ok">Identified: ' + esc(r.speaker) + "</div>";
    if (r.candidates.length) {
      html += "<table><tr><th>#</th><th>speaker</th><th>score</th><th>passes</th></tr>";
      r.candidates.forEach((c, i) => {
        html += "<tr><td>" + (i + 1) + "</td><td>" + esc(c.speaker) + '</td><td class="num">' + fmt(c.score) +
          "</td><td>" + (c.same_speaker ? '<span class="ok">yes</span>' : "no") + "</td></tr>";
      });
      html += "</table>";
    } else {
      html += '<div class="muted">No speakers are enrolled.</div>';
    }
    setStatus(out, html, "");
  } catch (e) { setStatus(out, "Error: " + esc(e.message), "bad"); }
};

$("verify-btn").onclick = async () => {
  const out = $("verify-result"), name = $("speaker-select").value;
  if (!needClip(out)) return;
  if (!name) { setStatus(out, "No enrolled speaker to verify against.", "warn"); return; }
  const form = new FormData(); form.append("file", state.clip.blob, state.clip.name);
  setStatus(out, "Verifying...", "muted");
  try {
    const r = await api("POST", "/v1/speakers/" + encodeURIComponent(name) + "/verify", form);
    const prob = (typeof r.probability === "number") ? ", probability " + fmt(r.probability) : "";
    setStatus(out, (r.same_speaker ? '<div class="verdict ok">Same speaker: ' + esc(name) + "</div>"
                                    : '<div class="verdict bad">Not ' + esc(name) + "</div>") +
      '<div class="muted">score ' + fmt(r.score) + ", threshold " + fmt(r.threshold) + prob + "</div>", "");
  } catch (e) { setStatus(out, "Error: " + esc(e.message), "bad"); }
};

// ---- enrollment (admin) ---------------------------------------------------------------------
function enrollClips() {
  return [...$("enroll-files").files].map((f) => ({ blob: f, name: f.name })).concat(state.recordedClips);
}
function showEnrollClips() {
  $("enroll-clips").innerHTML = enrollClips().map((c) => "<li>" + esc(c.name) + "</li>").join("");
}
$("enroll-files").onchange = showEnrollClips;
$("enroll-add-recording").onclick = () => {
  if (!state.clip) { setStatus($("enroll-result"), "Record or choose a recording first.", "warn"); return; }
  state.recordedClips.push(state.clip); showEnrollClips();
};
$("enroll-clear").onclick = () => { state.recordedClips = []; $("enroll-files").value = ""; showEnrollClips(); };
$("enroll-btn").onclick = async () => {
  const out = $("enroll-result"), name = $("enroll-name").value.trim(), clips = enrollClips();
  if (!name) { setStatus(out, "Enter the speaker's name.", "warn"); return; }
  if (!clips.length) { setStatus(out, "Add at least one clip.", "warn"); return; }
  const form = new FormData(); form.append("name", name);
  for (const c of clips) form.append("files", c.blob, c.name);
  setStatus(out, "Enrolling...", "muted");
  try {
    const r = await api("POST", "/v1/speakers", form);
    let html = '<div class="ok">Enrolled ' + esc(r.name) + " from " + r.enrolled.length + " clip(s) (" + r.n_clips + " in all).</div>";
    for (const x of r.rejected) html += '<div class="warn">Skipped ' + esc(x.file) + ": " + esc(x.reason) + "</div>";
    for (const w of r.warnings) html += '<div class="warn">' + esc(w) + "</div>";
    setStatus(out, html, "");
    state.recordedClips = []; $("enroll-files").value = ""; showEnrollClips();
    await refreshSpeakers();
  } catch (e) { setStatus(out, "Error: " + esc(e.message), "bad"); }
};

// ---- start ------------------------------------------------------------------------------------
health();
if (state.key) { $("api-key").value = state.key; useKey(state.key); }
