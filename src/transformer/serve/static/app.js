// The explorer page: translate (or continue) a sentence, then show its attention as
// a head view (lines from each query token to the keys, thickness = weight, as bertviz's
// head view) and one heatmap per head. Plain JavaScript, no library, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const HEAD_COLOURS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00acc1",
  "#6d4c41", "#d81b60", "#7cb342", "#3949ab", "#fdd835", "#546e7a"];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const state = { runs: [], data: null };

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function viridis(x) {  // x in [0, 1] -> an rgb() colour
  const t = Math.min(Math.max(x, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + f * (VIRIDIS[i + 1][k] - a)));
  return `rgb(${c.join(",")})`;
}

function status(message, ok) {
  $("status").textContent = message;
  $("status").className = ok ? "ok" : "";
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const payload = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${payload.detail}`);
  return payload;
}

function currentRun() {
  return state.runs.find((r) => r.name === $("run").value) || state.runs[0];
}

function fillSelect(select, values, labels, keep) {
  const previous = select.value;
  select.replaceChildren(...values.map((v, i) => new Option(labels[i], v)));
  if (keep && values.map(String).includes(previous)) select.value = previous;
}

function onRunChange() {
  const run = currentRun();
  $("run-info").textContent = `${run.kind}, ${run.heads} heads, d_model ${run.d_model}` +
    (run.kind === "translation" ? `, beam ${run.beam}, alpha ${run.alpha}` : "");
  $("go").textContent = run.kind === "gpt" ? "Continue" : "Translate";
  $("output-label").textContent = run.kind === "gpt" ? "continuation" : "translation";
  fillSelect($("kind"), run.attention_kinds, run.attention_kinds, false);
  if (run.attention_kinds.includes("cross")) $("kind").value = "cross";
}

async function submit(event) {
  event.preventDefault();
  const run = currentRun(), text = $("text").value;
  status("working…", true);
  $("go").disabled = true;
  const start = performance.now();
  try {
    // A translation run: /api/attention translates (the run's beam search) and returns the
    // attention of that translation, so one request gives both. A GPT run: continue the
    // prompt with /api/generate and show the attention over the prompt.
    const continuation = run.kind === "gpt"
      ? api("/api/generate", { run: run.name, prompt: text, max_new_tokens: 30 }) : null;
    const attention = await api("/api/attention", { run: run.name, text });
    $("translation").textContent = continuation ? (await continuation).continuation
      : attention.output;
    $("output").hidden = $("controls").hidden = $("views").hidden = false;
    state.data = attention;
    status(`done in ${Math.round(performance.now() - start)} ms`, true);
    render(true);
  } catch (err) {
    status(err.message, false);
  } finally {
    $("go").disabled = false;
  }
}

function selection() {
  const view = state.data.attention[$("kind").value];
  const layer = Number($("layer").value || 0);
  const head = $("head").value;
  const panels = view.panels.filter((p) => p.layer === layer &&
    (head === "all" || p.head === Number(head)));
  return { view, layer, panels };
}

function render(fresh) {
  const view = state.data.attention[$("kind").value];
  const layers = [...Array(view.n_layers).keys()], heads = [...Array(view.n_heads).keys()];
  fillSelect($("layer"), layers, layers.map(String), !fresh);
  fillSelect($("head"), ["all", ...heads], ["all", ...heads.map(String)], !fresh);
  const sel = selection();
  drawHeadView(sel);
  drawHeatmaps(sel);
  $("focus").textContent = "";
}

function drawHeadView({ view, panels }) {
  const svg = $("lines"), rowH = 20, width = 420, left = 150, right = width - 150;
  const n = Math.max(view.queries.length, view.keys.length);
  svg.replaceChildren();
  svg.setAttribute("width", width);
  svg.setAttribute("height", n * rowH + 30);
  svg.appendChild(el("text", { x: left - 8, y: 14, "text-anchor": "end", class: "caption" },
    "queries"));
  svg.appendChild(el("text", { x: right + 8, y: 14, class: "caption" }, "keys"));
  const y = (i) => 34 + i * rowH;
  for (const p of panels) {
    const colour = HEAD_COLOURS[(p.head ?? 0) % HEAD_COLOURS.length];
    p.weights.forEach((row, q) => row.forEach((w, k) => {
      if (w < 0.005) return;
      svg.appendChild(el("line", {
        x1: left, y1: y(q) - 4, x2: right, y2: y(k) - 4, stroke: colour,
        "stroke-width": (0.5 + 7 * w).toFixed(2), "stroke-opacity": (0.15 + 0.8 * w).toFixed(2),
        "data-head": p.head, "data-query": q, "data-key": k, "data-weight": w,
      }));
    }));
  }
  view.queries.forEach((tok, q) => {
    const t = el("text", { x: left - 8, y: y(q), "text-anchor": "end", class: "tok query",
      "data-index": q }, tok);
    t.addEventListener("mouseenter", () => focus(q));
    t.addEventListener("mouseleave", unfocus);
    svg.appendChild(t);
  });
  view.keys.forEach((tok, k) => svg.appendChild(el("text", { x: right + 8, y: y(k),
    class: "tok key", "data-index": k }, tok)));
}

function drawHeatmaps({ view, layer, panels }) {
  const box = $("heatmaps"), cell = 18, pad = 70;
  box.replaceChildren();
  for (const p of panels) {
    const div = document.createElement("div");
    div.className = "heatmap";
    div.dataset.head = p.head;
    const title = document.createElement("h3");
    title.textContent = `layer ${layer}, head ${p.head}`;
    const svg = el("svg", { width: pad + view.keys.length * cell + 30,
      height: pad + view.queries.length * cell });
    p.weights.forEach((row, q) => row.forEach((w, k) => svg.appendChild(el("rect", {
      x: pad + k * cell, y: pad + q * cell, width: cell - 1, height: cell - 1,
      fill: viridis(w), "data-query": q, "data-key": k, "data-weight": w,
    }, undefined))));
    view.queries.forEach((tok, q) => svg.appendChild(el("text", { x: pad - 4,
      y: pad + q * cell + 13, "text-anchor": "end" }, tok)));
    view.keys.forEach((tok, k) => svg.appendChild(el("text", {
      transform: `translate(${pad + k * cell + 12},${pad - 4}) rotate(-60)` }, tok)));
    div.append(title, svg);
    box.appendChild(div);
  }
}

function focus(q) {
  const { view, panels } = selection();
  const svg = $("lines");
  svg.classList.add("focused");
  svg.querySelectorAll("line").forEach((l) =>
    l.classList.toggle("active", Number(l.dataset.query) === q));
  svg.querySelectorAll("text.query").forEach((t) =>
    t.classList.toggle("hot", Number(t.dataset.index) === q));
  document.querySelectorAll(".heatmap rect").forEach((r) =>
    r.classList.toggle("row-hot", Number(r.dataset.query) === q));
  const parts = panels.map((p) => {
    const row = p.weights[q], best = row.indexOf(Math.max(...row));
    return `head ${p.head}: ${view.keys[best]} (${row[best].toFixed(2)})`;
  });
  $("focus").textContent = `"${view.queries[q]}" attends most to ` + parts.join("; ");
}

function unfocus() {
  $("lines").classList.remove("focused");
  document.querySelectorAll(".hot, .row-hot").forEach((n) =>
    n.classList.remove("hot", "row-hot"));
}

async function start() {
  try {
    const info = await api("/api/runs");
    state.runs = info.runs;
    fillSelect($("run"), info.runs.map((r) => r.name), info.runs.map((r) => r.name), false);
    $("text").maxLength = info.limits.max_chars;
    onRunChange();
  } catch (err) {
    status(`cannot list the runs: ${err.message}`, false);
  }
  $("run").addEventListener("change", onRunChange);
  $("form").addEventListener("submit", submit);
  $("kind").addEventListener("change", () => state.data && render(true));
  $("layer").addEventListener("change", () => render(false));
  $("head").addEventListener("change", () => render(false));
}

start();
