// The chat page (chat.html): loads a compressed Llama-family model directory with ChatModel
// (exprans-web), showing the download and load progress, then streams each reply into the page
// token by token with its speed, beside the GPU memory the model holds and the adapter's name.
//
// window.chatReady is set once the page has settled ("ready", "no-webgpu", "no-device" or
// "error"); window.chatDemo holds the state the browser test reads: {state ("idle", "loading",
// "loaded", "generating", "done", "error"), model, load, last (the last reply's result, ids as
// an array), tokens ([{id, text, ms}] of the last reply, as streamed), error}.

import init, { ChatModel, Decoder, webgpuAvailable } from "./pkg/exprans_web.js";

const $ = (id) => document.getElementById(id);
let decoder = null;
let model = null;
window.chatDemo = { state: "idle", model: null, load: null, last: null, tokens: [], error: null };

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const rate = (x) => (x == null ? "–" : x < 10 ? x.toFixed(2) : x.toFixed(1));

function showNoWebGPU(message) {
  const box = $("no-webgpu");
  box.textContent = message;
  box.hidden = false;
  $("device").textContent = "";
}

function setError(e) {
  const message = String(e?.message ?? e);
  $("summary").textContent = `Error: ${message}`;
  $("summary").dataset.state = "error";
  window.chatDemo.state = "error";
  window.chatDemo.error = message;
}

/** A status line that also shows how long its phase has run (updated every 100 ms while it
 * waits on the GPU, which reports nothing in between). */
function phaseClock(el) {
  let text = "";
  let since = performance.now();
  const show = () => { el.textContent = text ? `${text} (${secs(performance.now() - since)})` : ""; };
  const timer = setInterval(show, 100);
  return {
    set(t) { text = t; since = performance.now(); show(); },
    stop(final) { clearInterval(timer); el.textContent = final ?? ""; },
  };
}

const PHASES = {
  config: () => "reading config.json, tokenizer.json and tokenizer_config.json",
  download: (p) => `downloading ${p.file}${p.files > 1 ? ` (shard ${p.fileIndex + 1} of ${p.files})` : ""}`,
  parse: (p) => `parsed ${p.tensors} tensors (${(p.parameters / 1e6).toFixed(0)} M parameters, ` +
    `${p.compressed ? "compressed" : "plain"}); weights: ${p.weights}`,
  kernels: () => "compiling the inference kernels",
  weights: (p) => `uploading ${p.tensors} tensors to the GPU` +
    (p.weights === "fused" ? " (matrices kept compressed; the others decoded on the GPU)" :
      p.weights === "decoded" ? " and decoding them on the GPU" : " (decoded on the CPU)"),
  ready: (p) => `loaded in ${secs(p.loadMs)}`,
};

async function load() {
  const base = $("base-url").value.trim();
  const weights = $("weights").value;
  const context = Number($("context").value) || 1024;
  for (const b of ["load", "send", "stop", "reset"]) $(b).disabled = true;
  $("summary").textContent = "";
  $("summary").removeAttribute("data-state");
  $("memory").textContent = "";
  $("messages").replaceChildren();
  $("stats").textContent = "";
  model?.free();
  model = null;
  window.chatDemo = { state: "loading", model: null, load: null, last: null, tokens: [], error: null, decoder };
  $("load-box").hidden = false;
  const bar = $("download-progress");
  bar.removeAttribute("value");
  $("download-text").textContent = "";
  const clock = phaseClock($("load-status"));
  const started = performance.now();
  const phases = [];
  try {
    model = await ChatModel.load(decoder, base, {
      weights,
      context,
      onProgress: (p) => {
        if (phases.at(-1)?.phase !== p.phase) {
          phases.push({ phase: p.phase, ms: performance.now() - started });
          clock.set(PHASES[p.phase]?.(p) ?? p.phase);
        }
        if (p.phase === "download") {
          if (p.total) {
            bar.max = p.total;
            bar.value = p.loaded;
          }
          const s = (performance.now() - phases.at(-1).ms - started) / 1000;
          $("download-text").textContent = `${mb(p.loaded)}${p.total ? ` of ${mb(p.total)}` : ""} fetched` +
            (s > 0.2 ? ` (${(p.loaded / 1e6 / s).toFixed(0)} MB/s)` : "");
        }
      },
    });
    clock.stop(`Loaded ${model.info.architecture} (${model.info.layers} layers, ` +
      `${(model.info.parameters / 1e6).toFixed(0)} M parameters) in ${secs(model.loadMs)}: ` +
      phases.filter((p) => p.phase !== "ready")
        .map((p, i) => `${p.phase} ${secs((phases[i + 1]?.ms ?? model.loadMs) - p.ms)}`).join(", "));
    bar.max = 1;
    bar.value = 1;
    const how = { fused: "kept compressed, decoded inside the matrix kernels", decoded: "decoded once on the GPU",
      plain: "decoded on the CPU" }[model.weights];
    $("memory").textContent = `GPU memory: weights ${mb(model.weightBytes)} (${model.weights}: ${how}), ` +
      `activations and KV cache ${mb(model.activationBytes)} (context of ${model.context} tokens); ` +
      `downloaded ${mb(model.info.downloadBytes)}.`;
    window.chatDemo = { state: "loaded", model, load: { phases, loadMs: model.loadMs }, last: null, tokens: [], error: null, decoder };
    $("send").disabled = $("reset").disabled = false;
    $("input").focus();
  } catch (e) {
    clock.stop("");
    setError(e);
  } finally {
    $("load").disabled = false;
  }
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = `message ${role}`;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = role;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  div.append(label, body);
  $("messages").append(div);
  return { div, body };
}

async function send() {
  const text = $("input").value.trim();
  if (!model || !text || window.chatDemo.state === "generating") return;
  $("input").value = "";
  $("summary").textContent = "";
  $("summary").removeAttribute("data-state");
  $("send").disabled = $("reset").disabled = $("load").disabled = true;
  $("stop").disabled = false;
  bubble("user", text);
  const reply = bubble("assistant", "");
  reply.div.dataset.streaming = "";
  const maxNewTokens = Number($("max-new-tokens").value) || 128;
  const temperature = Number($("temperature").value) || 0;
  const tokens = [];
  window.chatDemo.state = "generating";
  window.chatDemo.tokens = tokens;
  const clock = phaseClock($("stats"));
  clock.set("prefill: running the prompt");
  const started = performance.now();
  try {
    const result = await model.chat(text, {
      maxNewTokens,
      temperature,
      seed: Date.now() % 2 ** 32,
      onToken: (t) => {
        const ms = performance.now() - started;
        tokens.push({ id: t.id, text: t.text, ms });
        reply.body.textContent += t.text;
        if (t.id === null) return;
        const n = tokens.filter((x) => x.id !== null).length;
        const speed = n > 1 ? (n - 1) / ((ms - tokens[0].ms) / 1000) : null;
        clock.set(`${n} token${n > 1 ? "s" : ""}, first after ${secs(tokens[0].ms)}` +
          (speed ? `, ${rate(speed)} tokens/s` : "") + "; generating");
      },
    });
    const r = result;
    clock.stop(`Prompt: ${r.promptTokens} tokens (${r.reusedTokens} kept in the KV cache) in ${secs(r.prefillMs)}` +
      ` (${rate(r.prefillTokensPerSecond)} tokens/s; it gives the first token). Reply: ${r.newTokens} tokens; ` +
      `${r.decodeSteps} single-token forward steps in ${secs(r.decodeMs)}: ${rate(r.tokensPerSecond)} tokens/s; ended by ` +
      `${{ stop: "the stop token", length: "the token limit", stopped: "Stop" }[r.finish]}. ` +
      `Conversation: ${model.cachedTokens} of ${model.context} context positions.`);
    window.chatDemo.last = { ...r, ids: Array.from(r.ids), promptIds: Array.from(r.promptIds) };
    window.chatDemo.state = "done";
  } catch (e) {
    clock.stop("");
    setError(e);
  } finally {
    delete reply.div.dataset.streaming;
    $("send").disabled = $("reset").disabled = $("load").disabled = false;
    $("stop").disabled = true;
  }
}

async function main() {
  await init();
  if (!webgpuAvailable()) {
    showNoWebGPU("This browser has no WebGPU (navigator.gpu is missing), so the model cannot run " +
      "here. Use a browser with WebGPU enabled (Chrome or Edge 113 or later; on Linux start it " +
      "with --enable-unsafe-webgpu), on a page served from https:// or http://localhost.");
    window.chatReady = "no-webgpu";
    return;
  }
  try {
    decoder = await Decoder.create();
  } catch (e) {
    showNoWebGPU(`WebGPU is there but no device could be opened: ${e.message ?? e}`);
    window.chatReady = "no-device";
    return;
  }
  const name = decoder.adapterName || "the browser gives no adapter name";
  const a = decoder.adapter ?? {};
  $("device").textContent = `WebGPU adapter: ${name}` +
    `${decoder.adapterInfo?.isFallbackAdapter ? " (a fallback, software adapter)" : ""}; ` +
    `largest storage binding ${mb(a.max_storage_buffer_binding_size ?? 0)}.`;
  $("load").disabled = false;
  $("load").addEventListener("click", load);
  $("chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
  });
  $("stop").addEventListener("click", () => model?.stop());
  $("reset").addEventListener("click", () => {
    model?.reset();
    $("messages").replaceChildren();
    $("stats").textContent = "";
  });
  window.chatDemo.decoder = decoder;
  window.chatReady = "ready";
}

main().catch((e) => {
  showNoWebGPU(`The page failed to start: ${e.message ?? e}`);
  window.chatReady = "error";
});
