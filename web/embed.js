// The embedding demo page (embed.html): loads a compressed BERT sentence encoder with
// EmbeddingModel (exprans-web) once per chosen weight mode, embeds the sentences, and shows the
// embeddings, their cosine similarities, the GPU memory held by the weights and the time per
// forward pass. window.embedDemo holds the last run's results (the browser test reads them).

import init, { Decoder, EmbeddingModel, cosine, webgpuAvailable } from "./pkg/exprans_web.js";

const $ = (id) => document.getElementById(id);
let decoder = null;
window.embedDemo = { state: "loading", results: null, error: null };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function showNoWebGPU(message) {
  const box = $("no-webgpu");
  box.textContent = message;
  box.hidden = false;
  $("device").textContent = "";
}

/** A status line that also shows how long its phase has run (updated every 100 ms while it
 * waits on the GPU, which reports nothing in between). */
function phaseClock(el) {
  let text = "";
  let since = performance.now();
  const show = () => {
    el.textContent = text ? `${text} (${((performance.now() - since) / 1000).toFixed(1)} s)` : "";
  };
  const timer = setInterval(show, 100);
  return {
    set(t) { text = t; since = performance.now(); show(); },
    stop() { clearInterval(timer); el.textContent = ""; },
  };
}

const PHASES = {
  download: () => "downloading the model",
  parse: (p) => `parsed ${p.tensors} tensors`,
  kernels: () => "compiling the inference kernels",
  weights: (p) => `uploading ${p.tensors} tensors to the GPU` +
    (p.weights === "fused" ? " (matrices kept compressed; the others decoded on the GPU)" :
      p.weights === "decoded" ? " and decoding them on the GPU" : " (decoded on the CPU)"),
  ready: (p) => `loaded in ${(p.loadMs / 1000).toFixed(1)} s`,
};

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB (${n.toLocaleString("en")} bytes)`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The load options for one of the three files: a picked local file, else the URL. */
async function source(kind, options) {
  const file = $(`${kind}-file`).files[0];
  const url = $(`${kind}-url`).value.trim();
  if (kind === "model") {
    if (file) options.modelBytes = file;
    else options.modelUrl = url;
  } else if (file) {
    options[`${kind}Json`] = await file.text();
  } else {
    options[`${kind}Url`] = url;
  }
}

function sameBits(a, b) {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function render(sentences, results) {
  const tbody = $("modes").querySelector("tbody");
  tbody.replaceChildren();
  for (const r of results) {
    const tr = el("tr");
    tr.append(el("td", r.weights), el("td", mib(r.weightBytes)), el("td", r.loadMs.toFixed(0)),
      el("td", median(r.passMs).toFixed(1)), el("td", r.passMs.map((m) => m.toFixed(0)).join(" / ")));
    tbody.append(tr);
  }
  $("modes").hidden = false;

  const first = results[0];
  const emb = $("embeddings");
  emb.replaceChildren(el("h3", `Embeddings (${first.weights} weights), first 6 of ${first.embeddings[0]?.length ?? 0} values`));
  const t1 = el("table");
  for (let i = 0; i < sentences.length; i++) {
    const tr = el("tr");
    const head = Array.from(first.embeddings[i].slice(0, 6), (v) => (v >= 0 ? "+" : "") + v.toFixed(5));
    tr.append(el("td", sentences[i], "text"), el("td", head.join(", "), "text"));
    t1.append(tr);
  }
  emb.append(t1);
  for (const r of results.slice(1)) {
    const same = r.embeddings.every((e, i) => sameBits(e, first.embeddings[i]));
    emb.append(el("p", `${r.weights} embeddings bit-identical to ${first.weights}: ${same ? "yes" : "NO"}`));
  }

  const sim = $("similarities");
  sim.replaceChildren(el("h3", "Cosine similarities"));
  const t2 = el("table");
  const hr = el("tr");
  hr.append(el("th", ""));
  sentences.forEach((_, j) => hr.append(el("th", `${j + 1}`)));
  t2.append(hr);
  for (let i = 0; i < sentences.length; i++) {
    const tr = el("tr");
    tr.append(el("td", `${i + 1}. ${sentences[i]}`, "text"));
    for (let j = 0; j < sentences.length; j++) {
      tr.append(el("td", cosine(first.embeddings[i], first.embeddings[j]).toFixed(4)));
    }
    t2.append(tr);
  }
  sim.append(t2);
}

async function run() {
  const sentences = $("sentences").value.split("\n").map((s) => s.trim()).filter((s) => s);
  const modes = [...document.querySelectorAll(".mode:checked")].map((m) => m.value);
  const summary = $("summary");
  summary.removeAttribute("data-state");
  summary.textContent = "";
  window.embedDemo = { state: "running", results: null, error: null, decoder };
  $("run").disabled = true;
  const bar = $("progress");
  const progressText = $("progress-text");
  const clock = phaseClock($("status"));
  $("progress-box").hidden = false;
  bar.removeAttribute("value");
  progressText.textContent = "";
  try {
    if (!sentences.length) throw new Error("type at least one sentence");
    if (!modes.length) throw new Error("pick at least one weight mode");
    const options = {};
    await source("model", options);
    await source("tokenizer", options);
    await source("config", options);
    const results = [];
    const passes = modes.length * sentences.length;
    let pass = 0;
    for (const [m, weights] of modes.entries()) {
      const what = `${weights} weights (model ${m + 1} of ${modes.length})`;
      clock.set(`${what}: loading`);
      let phase = "";
      const model = await EmbeddingModel.load(decoder, {
        ...options,
        weights,
        onProgress: (p) => {
          if (p.phase !== phase) {
            phase = p.phase;
            clock.set(`${what}: ${PHASES[p.phase]?.(p) ?? p.phase}`);
          }
          if (p.phase === "download") {
            if (p.total) {
              bar.max = p.total;
              bar.value = p.loaded;
            }
            progressText.textContent = `${mib(p.loaded)}${p.total ? ` of ${mib(p.total)}` : ""} fetched`;
          }
        },
      });
      try {
        const embeddings = [];
        const passMs = [];
        for (const [i, sentence] of sentences.entries()) {
          bar.max = passes;
          bar.value = pass;
          progressText.textContent = `forward pass ${pass + 1} of ${passes}`;
          clock.set(`${weights}: embedding sentence ${i + 1} of ${sentences.length}`);
          embeddings.push((await model.embed(sentence))[0]);
          passMs.push(model.lastPassMs[0]);
          pass += 1;
        }
        results.push({ weights, weightBytes: model.weightBytes, loadMs: model.loadMs,
          passMs, embeddings, ids: sentences.map((s) => Array.from(model.tokenize(s))) });
      } finally {
        model.free();
      }
    }
    bar.max = 1;
    bar.value = 1;
    progressText.textContent = `${passes} forward passes done`;
    clock.stop();
    render(sentences, results);
    summary.textContent = `${sentences.length} sentence(s) embedded with ${modes.join(", ")} weights`;
    summary.dataset.state = "done";
    window.embedDemo = { state: "done", results, error: null, decoder };
  } catch (e) {
    clock.stop();
    summary.textContent = `Error: ${e.message ?? e}`;
    summary.dataset.state = "error";
    window.embedDemo = { state: "error", results: null, error: String(e.message ?? e), decoder };
  } finally {
    $("run").disabled = false;
  }
}

async function main() {
  await init();
  if (!webgpuAvailable()) {
    showNoWebGPU("This browser has no WebGPU (navigator.gpu is missing), so the model cannot run " +
      "here. Use a browser with WebGPU enabled (Chrome or Edge 113 or later; on Linux start it " +
      "with --enable-unsafe-webgpu), on a page served from https:// or http://localhost.");
    window.embedReady = "no-webgpu";
    return;
  }
  try {
    decoder = await Decoder.create();
  } catch (e) {
    showNoWebGPU(`WebGPU is there but no device could be opened: ${e.message ?? e}`);
    window.embedReady = "no-device";
    return;
  }
  const a = decoder.adapter ?? {};
  // wgpu gets only GPUAdapterInfo.description, which browsers often leave empty; adapterName
  // falls back to the browser's vendor and architecture.
  $("device").textContent = `WebGPU adapter: ${decoder.adapterName || "the browser gives no adapter name"}` +
    `${decoder.adapterInfo?.isFallbackAdapter ? " (a fallback, software adapter)" : ""} (${a.backend ?? "WebGPU"})`;
  $("run").disabled = false;
  $("run").addEventListener("click", run);
  window.embedDemo.decoder = decoder;
  window.embedReady = "ready";
}

main().catch((e) => {
  showNoWebGPU(`The page failed to start: ${e.message ?? e}`);
  window.embedReady = "error";
});
