#!/usr/bin/env node
// End-to-end browser test: headless Chromium (WebGPU on SwiftShader) driven by playwright-core
// loads the demo page from a static server on 127.0.0.1 and runs test/checks.js in it against the
// files and native checksums that examples/web_fixtures.rs wrote; then it drives the demo page's
// own UI, and checks the message a browser without WebGPU gets. Any failure, including a
// Chromium that cannot be started, exits with status 1: nothing is skipped.
//
//   node web/test/browser-test.mjs --data DIR [--chromium PATH] [--embed-only] [--chat-only]
//
// When DIR holds embeddings.json (web/build.sh --data writes it when all-MiniLM-L6-v2 is in the
// shared models folder), it also runs the sentence-embedding test on embed.html; when it holds
// chat.json (written when SmolLM2-135M-Instruct is in target/models), the chat test on
// chat.html; otherwise it prints "SKIPPED: ..." for that part only. --embed-only and
// --chat-only run just that part (and then fail, since the rest was not checked): for working
// on it.
//
// Progress: each page's progress elements are sampled by a timer of the page's own every 20 ms
// while it works; a value the timer sees is one the page could show (the event loop was free),
// so a page that blocks until the end shows one value only. The test asserts more than one.
//
// DIR holds expected.json and the compressed files (web/test.sh makes it). The Chromium binary is
// --chromium, else $CHROMIUM, else /usr/bin/chromium (Debian's package `chromium`).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "../serve.mjs";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu"];
// The chat test alone takes several minutes on SwiftShader (a prefill of 37 tokens and 7 more
// forward steps of a 135M-parameter model).
const TIMEOUT_MS = 45 * 60 * 1000;
// Whether the browser's fused embeddings must be bit-identical to the native GPU's (see
// web/README.md, "Sentence embeddings").
const EMBED_BIT_IDENTICAL = false;

function fail(message) {
  console.error(`\nFAIL: ${message}`);
  process.exit(1);
}

function option(name, fallback) {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

/** Starts sampling the text of the elements `selectors` (the last match of each) in `page`,
 * every 20 ms from a timer of the page's own, keeping each new value. */
async function startSampling(page, selectors) {
  await page.evaluate((sels) => {
    clearInterval(window.__sampler);
    window.__samples = Object.fromEntries(sels.map((s) => [s, []]));
    const take = () => {
      for (const s of sels) {
        const all = document.querySelectorAll(s);
        const v = all.length ? all[all.length - 1].textContent : "";
        const list = window.__samples[s];
        if (list.at(-1) !== v) list.push(v);
      }
    };
    take();
    window.__sampler = setInterval(take, 20);
  }, selectors);
}

/** Stops sampling; resolves to {selector: [distinct successive values]}. */
async function stopSampling(page) {
  return page.evaluate(() => {
    clearInterval(window.__sampler);
    return window.__samples;
  });
}

/** The distinct non-empty values of a sampled element, with the "(12.3 s)" phase clocks the
 * pages append removed (a clock alone is not progress). */
function distinct(values) {
  return [...new Set(values.map((v) => v.replace(/ \(\d+(\.\d+)? s\)$/, "").trim()).filter(Boolean))];
}

/** Checks that every sampled element took more than one value; returns a report line. */
function checkProgress(what, samples, failures) {
  const parts = [];
  for (const [selector, values] of Object.entries(samples)) {
    const d = distinct(values);
    parts.push(`${selector} ${d.length} values`);
    if (d.length < 2) failures.push(`${what}: ${selector} showed ${d.length} value(s) while it worked: ${JSON.stringify(d)}`);
  }
  return `${what} progress seen by the page's timer: ${parts.join(", ")}`;
}

/** The adapter line of a page must name the adapter (not "?", not empty). */
async function checkAdapterLine(page, what, failures) {
  const line = (await page.textContent("#device")) ?? "";
  const name = await page.evaluate(async () => {
    const { Decoder } = await import("/pkg/exprans_web.js");
    const d = await Decoder.create();
    const r = { name: d.adapterName, info: d.adapterInfo };
    d.free();
    return r;
  });
  if (!name.name || /\?/.test(line) || !line.includes(name.name)) {
    failures.push(`${what}: adapter line '${line}' (adapterName '${name.name}', adapterInfo ${JSON.stringify(name.info)})`);
  }
  return { line, ...name };
}

const mbps = (x) => (x == null ? "–" : x.toFixed(0).padStart(6));

function printThroughput(expected, result) {
  const native = expected.native;
  const adapter = native.adapter ?? {};
  const timings = result.timings ?? [];
  const browser = result.info?.browser ?? {};
  console.log("\nDecode throughput on this machine, same files, same run, MB/s of decoded bytes.");
  console.log("Per coded tensor, one submission each: stored checksum, parse, output buffer, upload,");
  console.log("decode, wait for the GPU (second of two passes):");
  const rows = [["file", "browser", ...native.gpu.map((g) => `native GPU ${g.kernelPath}`), "native CPU 1 thread"]];
  for (const t of timings) {
    const gpu = native.gpu.map((g) => g.files.find((f) => f.file === t.file)?.megabytesPerSecond);
    const cpu = native.cpuFastOneThread.find((f) => f.file === t.file)?.megabytesPerSecond;
    rows.push([t.file, mbps(t.megabytesPerSecond), ...gpu.map(mbps), mbps(cpu)]);
  }
  for (const r of rows) console.log(`  ${r[0].padEnd(44)} ${r.slice(1).map((c) => String(c).padStart(20)).join("")}`);
  console.log(`  browser: Chromium WebGPU on ${browser.vendor ?? "?"} ${browser.architecture ?? "?"}, ` +
    `kernel ${timings[0]?.kernelPath} (the browser offers subgroups: ${browser.subgroups}, sizes ` +
    `${browser.subgroupSizes?.join("-")}; wgpu 30 does not pass the feature on)`);
  console.log(`  native GPU: ${adapter.backend ?? "none"} ${adapter.name ?? ""}` +
    `${native.gpuError ? ` (${native.gpuError})` : ""}`);
  const copy = result.info?.copyU32MegabytesPerSecond;
  const kernels = native.kernels ?? [];
  if (kernels.length) {
    console.log("Kernels alone (native: exprans::gpu::bench, one batch per file), MB/s:");
    for (const k of kernels) {
      const r = k.report;
      console.log(`  ${k.file.padEnd(44)} decode ${mbps(r.decode / 1e6)}  copy u32 ${mbps(r.copy_u32 / 1e6)}` +
        `  (${r.path}, ${(r.decode / r.copy_u32).toFixed(2)}x copy)`);
    }
  }
  if (copy) console.log(`  browser copy u32 shader (16 MiB): ${mbps(copy)} MB/s`);
}

/** The embedding test (embed.html, EmbeddingModel): all-MiniLM-L6-v2 from its row-aligned
 * compressed file, fused (required) and plain weights, one forward pass per sentence per mode,
 * against the native reference of examples/web_fixtures.rs --embeddings (embeddings.json).
 * Returns the results for browser-results.json, or null when the shared models are absent. */
async function embedTest(browser, url, data, failures) {
  const refPath = path.join(data, "embeddings.json");
  if (!fs.existsSync(refPath)) {
    console.log("\nSKIPPED: embedding test: no embeddings.json (web/build.sh --data writes it when " +
      "all-MiniLM-L6-v2 is in $EXPRANS_MODELS_DIR or ../shared/models)");
    return null;
  }
  const ref = JSON.parse(fs.readFileSync(refPath, "utf8"));
  const started = Date.now();
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`  [embed page ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${url}/embed.html`);
  await page.waitForFunction(() => window.embedReady !== undefined, null, { timeout: 60_000 });
  const ready = await page.evaluate(() => window.embedReady);
  if (ready !== "ready") {
    failures.push(`embed page: no WebGPU device (${ready}): ${await page.textContent("#no-webgpu")}`);
    return null;
  }

  // 1. A model that is not row-aligned is refused for fused weights with a clear message.
  const refusal = await page.evaluate(async () => {
    const { EmbeddingModel } = await import("/pkg/exprans_web.js");
    try {
      const m = await EmbeddingModel.load(window.embedDemo.decoder, {
        modelUrl: "data/all-MiniLM-L6-v2.exprans.safetensors", weights: "fused",
        tokenizerUrl: "data/all-MiniLM-L6-v2/tokenizer.json", configUrl: "data/all-MiniLM-L6-v2/config.json",
      });
      m.free();
      return "loaded";
    } catch (e) {
      return e.message;
    }
  });
  if (!/--rows-per-block 32/.test(refusal)) failures.push(`embed: a model without whole-row blocks gave: ${refusal}`);
  console.log(`\nembedding test: default-block model refused for fused weights: ${refusal.slice(0, 110)}…`);

  const adapter = await checkAdapterLine(page, "embed page", failures);
  console.log(`embed page: ${adapter.line}`);

  // 2. The page's UI: the test sentences, fused and plain weights; its progress elements update
  //    while it works.
  await page.fill("#sentences", ref.sentences.join("\n"));
  for (const mode of ["fused", "plain", "decoded"]) {
    await page.setChecked(`.mode[value=${mode}]`, mode !== "decoded");
  }
  await startSampling(page, ["#progress-text", "#status"]);
  await page.click("#run");
  await page.waitForSelector("#summary[data-state]", { timeout: 300_000 });
  const samples = await stopSampling(page);
  console.log(checkProgress("embed page", samples, failures));
  console.log(`  #progress-text: ${distinct(samples["#progress-text"]).slice(0, 4).join(" | ")} …`);
  console.log(`  #status: ${distinct(samples["#status"]).join(" | ")}`);
  const state = await page.getAttribute("#summary", "data-state");
  const summary = await page.textContent("#summary");
  console.log(`embed page: ${summary}`);
  if (state !== "done") {
    failures.push(`embed page: ${summary}`);
    return null;
  }
  const results = await page.evaluate(() => window.embedDemo.results.map((r) => ({
    weights: r.weights, weightBytes: r.weightBytes, loadMs: r.loadMs, passMs: r.passMs, ids: r.ids,
    values: r.embeddings.map((e) => Array.from(e)),
    bits: r.embeddings.map((e) => Array.from(new Uint32Array(e.buffer, e.byteOffset, e.length))),
  })));
  const cos = (a, b) => {
    let d = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    return d / Math.sqrt(na * nb);
  };
  const fused = results.find((r) => r.weights === "fused");
  const nativeFused = ref.gpu.find((g) => g.weights === "fused");
  if (JSON.stringify(fused.ids) !== JSON.stringify(ref.ids)) {
    failures.push(`embed: token ids differ from native: ${JSON.stringify(fused.ids)} vs ${JSON.stringify(ref.ids)}`);
  }
  const report = { sentences: ref.sentences, modes: [] };
  for (const r of results) {
    const native = ref.gpu.find((g) => g.weights === r.weights);
    const values = r.bits.flat().length;
    const same = r.bits.flat().filter((b, i) => b === native.bits.flat()[i]).length;
    const minCpu = Math.min(...r.values.map((e, i) => cos(e, ref.cpu.embeddings[i])));
    const minNative = Math.min(...r.values.map((e, i) =>
      cos(e, Array.from(new Float32Array(new Uint32Array(native.bits[i]).buffer)))));
    const nativeValues = native.bits.flat().map((b) => new Float32Array(new Uint32Array([b]).buffer)[0]);
    const maxAbsDiff = Math.max(...r.values.flat().map((v, i) => Math.abs(v - nativeValues[i])));
    const sameAsFused = r.bits.flat().every((b, i) => b === fused.bits.flat()[i]);
    const median = [...r.passMs].sort((a, b) => a - b)[Math.floor(r.passMs.length / 2)];
    report.modes.push({ weights: r.weights, weightBytes: r.weightBytes, nativeWeightBytes: native.weightBytes,
      browserMsPerPass: median, passMs: r.passMs, loadMs: r.loadMs, nativeMsPerPass: native.msPerPass,
      bitIdenticalValues: same, values, maxAbsDiffWithNativeGpu: maxAbsDiff, minCosineWithCpu: minCpu, minCosineWithNativeGpu: minNative,
      bitIdenticalToBrowserFused: sameAsFused });
    if (r.weightBytes !== native.weightBytes) {
      failures.push(`embed ${r.weights}: ${r.weightBytes} bytes of weights, native ${native.weightBytes}`);
    }
    if (!sameAsFused) failures.push(`embed ${r.weights}: not bit-identical to the browser's fused embeddings`);
    if (EMBED_BIT_IDENTICAL && same !== values) {
      failures.push(`embed ${r.weights}: ${values - same} of ${values} values differ from the native GPU's`);
    }
    if (minNative < 0.9999) failures.push(`embed ${r.weights}: cosine with the native GPU's ${minNative}`);
    if (minCpu < 0.9999) failures.push(`embed ${r.weights}: cosine with the CPU f32 reference ${minCpu}`);
  }
  if (fused.weightBytes >= results.find((r) => r.weights === "plain")?.weightBytes) {
    failures.push("embed: fused weights do not hold less GPU memory than plain ones");
  }
  if (pageErrors.length) failures.push(`embed page errors: ${pageErrors.join("; ")}`);
  await page.close();

  // 3. Without WebGPU, the embedding page says so.
  const context = await browser.newContext();
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true });
  });
  const bare = await context.newPage();
  await bare.goto(`${url}/embed.html`);
  await bare.waitForFunction(() => window.embedReady !== undefined, null, { timeout: 60_000 });
  const message = (await bare.textContent("#no-webgpu")) ?? "";
  if ((await bare.evaluate(() => window.embedReady)) !== "no-webgpu" || !(await bare.isVisible("#no-webgpu")) ||
      !/no WebGPU/.test(message)) {
    failures.push(`embed page without WebGPU says: '${message}'`);
  }
  await context.close();

  console.log(`Sentence embeddings, all-MiniLM-L6-v2 (${ref.sentences.length} sentences of ` +
    `${ref.ids.map((i) => i.length).join("/")} tokens), browser (SwiftShader) beside native GPU ` +
    `(${ref.adapter?.name ?? "?"}), same run:`);
  console.log("  weights  GPU memory of weights  browser ms/pass  native ms/pass  values bit-identical to native  min cosine vs CPU f32");
  for (const m of report.modes) {
    console.log(`  ${m.weights.padEnd(8)} ${String(m.weightBytes).padStart(21)} ${m.browserMsPerPass.toFixed(0).padStart(16)}` +
      ` ${m.nativeMsPerPass.toFixed(0).padStart(15)} ${`${m.bitIdenticalValues}/${m.values}`.padStart(31)}` +
      ` ${m.minCosineWithCpu.toFixed(9).padStart(22)}`);
  }
  const f = report.modes[0];
  console.log(`  ${f.weights}: lowest cosine with the native GPU's ${f.minCosineWithNativeGpu.toFixed(9)}, largest ` +
    `difference ${f.maxAbsDiffWithNativeGpu.toExponential(2)} (SwiftShader and llvmpipe round differently: ` +
    "web/README.md); plain bit-identical to fused in the browser: " +
    `${report.modes.every((m) => m.bitIdenticalToBrowserFused) ? "yes" : "NO"}`);
  console.log(`  native CPU f32 reference: ${ref.cpu.msPerPass.toFixed(0)} ms per pass; embedding test took ` +
    `${((Date.now() - started) / 1000).toFixed(0)} s`);
  return report;
}

/** The chat test (chat.html, ChatModel): SmolLM2-135M-Instruct from its compressed directory,
 * driven through the page's UI: the download and load progress update, the reply streams into
 * the page token by token, and its greedy token ids (and prompt ids and text) equal those of the
 * native runtime (`exprans generate --json`, in chat.json from examples/web_fixtures.rs --chat).
 * Then generateIds continues the same conversation from the KV cache for one step, whose
 * highest logits are compared with the native step's. Returns the results for
 * browser-results.json, or null when SmolLM2 is absent. */
async function chatTest(browser, url, data, failures) {
  const refPath = path.join(data, "chat.json");
  if (!fs.existsSync(refPath)) {
    console.log("\nSKIPPED: chat test: no chat.json (web/build.sh --data writes it when " +
      "SmolLM2-135M-Instruct is in target/models; web/test.sh fetches it with ../shared/tools/fetch-smollm2.sh)");
    return null;
  }
  const ref = JSON.parse(fs.readFileSync(refPath, "utf8"));
  const native = ref.native;
  const started = Date.now();
  console.log(`\nchat test: ${ref.model}, weights ${ref.weights}, context ${ref.context}, ` +
    `"${ref.prompt}", at most ${ref.maxNewTokens} new tokens (minutes on SwiftShader)`);
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`  [chat page ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${url}/chat.html`);
  await page.waitForFunction(() => window.chatReady !== undefined, null, { timeout: 60_000 });
  const ready = await page.evaluate(() => window.chatReady);
  if (ready !== "ready") {
    failures.push(`chat page: no WebGPU device (${ready}): ${await page.textContent("#no-webgpu")}`);
    return null;
  }
  const adapter = await checkAdapterLine(page, "chat page", failures);
  console.log(`chat page: ${adapter.line}`);

  // 1. Load: the download bar's text and the load status update while it works.
  await page.fill("#base-url", `data/${ref.model}/`);
  await page.selectOption("#weights", ref.weights);
  await page.fill("#context", String(ref.context));
  await startSampling(page, ["#download-text", "#load-status"]);
  await page.click("#load");
  await page.waitForFunction(() => ["loaded", "error"].includes(window.chatDemo.state), null,
    { timeout: 600_000, polling: 500 });
  const loadSamples = await stopSampling(page);
  const loaded = await page.evaluate(() => {
    const m = window.chatDemo.model;
    return { state: window.chatDemo.state, error: window.chatDemo.error, phases: window.chatDemo.load?.phases,
      weightBytes: m?.weightBytes, activationBytes: m?.activationBytes, loadMs: m?.loadMs, weights: m?.weights,
      context: m?.context, adapter: m?.adapter, info: m?.info, status: document.getElementById("load-status").textContent,
      memory: document.getElementById("memory").textContent };
  });
  if (loaded.state !== "loaded") {
    failures.push(`chat page: loading failed: ${loaded.error}`);
    return null;
  }
  console.log(`chat page: ${loaded.status}`);
  console.log(`chat page: ${loaded.memory}`);
  console.log(checkProgress("chat page load", loadSamples, failures));
  const downloads = distinct(loadSamples["#download-text"]);
  console.log(`  #download-text: ${downloads.slice(0, 3).join(" | ")} … ${downloads.at(-1)}`);
  console.log(`  #load-status: ${distinct(loadSamples["#load-status"]).join(" | ")}`);
  const t = native.timings ?? {};
  if (loaded.weightBytes !== t.weight_bytes) {
    failures.push(`chat: ${loaded.weightBytes} bytes of weights on the GPU, native ${t.weight_bytes}`);
  }
  if (loaded.activationBytes !== t.activation_bytes) {
    failures.push(`chat: ${loaded.activationBytes} bytes of activations and KV cache, native ${t.activation_bytes}`);
  }
  if (ref.weights !== "auto" && loaded.weights !== ref.weights) failures.push(`chat: weights ${loaded.weights}`);
  if (loaded.adapter !== adapter.name) failures.push(`chat: model.adapter '${loaded.adapter}', decoder '${adapter.name}'`);

  // 2. The chat prompt through the UI: the reply streams into the page; greedy ids as native.
  await page.fill("#input", ref.prompt);
  await page.fill("#max-new-tokens", String(ref.maxNewTokens));
  await page.fill("#temperature", "0");
  await startSampling(page, [".message.assistant .text", "#stats"]);
  await page.click("#send");
  await page.waitForFunction(() => ["done", "error"].includes(window.chatDemo.state), null,
    { timeout: 1_500_000, polling: 1000 });
  const replySamples = await stopSampling(page);
  const chat = await page.evaluate(() => ({ state: window.chatDemo.state, error: window.chatDemo.error,
    last: window.chatDemo.last, tokens: window.chatDemo.tokens, stats: document.getElementById("stats").textContent,
    reply: [...document.querySelectorAll(".message.assistant .text")].at(-1)?.textContent }));
  if (chat.state !== "done") {
    failures.push(`chat page: the reply failed: ${chat.error}`);
    return null;
  }
  const last = chat.last;
  console.log(`chat page: "${chat.reply}"; ${chat.stats}`);
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(last.promptIds, native.prompt_ids)) {
    failures.push(`chat: prompt ids ${JSON.stringify(last.promptIds)}, native ${JSON.stringify(native.prompt_ids)}`);
  }
  const matched = last.ids.filter((id, i) => id === native.generated_ids[i]).length;
  if (!same(last.ids, native.generated_ids)) {
    failures.push(`chat: greedy ids ${JSON.stringify(last.ids)}, native ${JSON.stringify(native.generated_ids)}`);
  }
  if (last.text !== native.text || chat.reply !== native.text) {
    failures.push(`chat: reply '${last.text}' (page shows '${chat.reply}'), native '${native.text}'`);
  }
  const ended = native.generated_ids.length < ref.maxNewTokens ? "stop" : "length";
  if (last.finish !== ended) failures.push(`chat: finish '${last.finish}', expected '${ended}'`);
  // Streaming: each token reached the page on its own, before the reply was complete.
  const streamed = chat.tokens.filter((x) => x.id !== null);
  const partial = distinct(replySamples[".message.assistant .text"]).filter((v) => v !== native.text);
  if (!same(streamed.map((x) => x.id), last.ids)) failures.push("chat: onToken ids differ from the result's");
  if (last.ids.length > 1 && partial.length < 1) {
    failures.push(`chat: the reply did not stream (the page's timer saw ${JSON.stringify(replySamples[".message.assistant .text"])})`);
  }
  console.log(checkProgress("chat page reply", replySamples, failures));
  console.log(`  the reply as the page's timer saw it: ${distinct(replySamples[".message.assistant .text"]).map((v) => JSON.stringify(v)).join(" → ")}`);

  // 3. generateIds from token ids, continuing from the KV cache (reuseCache): one step after
  //    the prompt and the first tokens but the last, whose logits native step n-1 reported.
  const n = native.generated_ids.length;
  let step = null;
  if (n >= 2) {
    const ids = [...native.prompt_ids, ...native.generated_ids.slice(0, n - 1)];
    step = await page.evaluate(async (ids) => {
      const r = await window.chatDemo.model.generateIds(new Uint32Array(ids), { maxNewTokens: 1, reuseCache: true, topLogits: 10 });
      return { ids: Array.from(r.ids), reused: r.reusedTokens, top: r.top, ms: r.prefillMs, finish: r.finish };
    }, ids);
    const want = native.steps[n - 1].top;
    const diff = Math.max(...step.top[0].map(([id, l], i) => (id === want[i][0] ? Math.abs(l - want[i][1]) : Infinity)));
    const rel = diff / Math.abs(want[0][1]);
    console.log(`generateIds (${ids.length} ids, ${step.reused} from the KV cache, ${step.ms.toFixed(0)} ms): ` +
      `${JSON.stringify(step.ids)}, native ${native.generated_ids[n - 1]}; top-10 ids as native, largest ` +
      `logit difference ${diff.toExponential(2)} (${rel.toExponential(1)} of the top logit)`);
    if (!same(step.ids, [native.generated_ids[n - 1]])) failures.push(`chat: generateIds gave ${JSON.stringify(step.ids)}`);
    if (step.reused !== ids.length - 1) failures.push(`chat: generateIds reused ${step.reused} cached positions, expected ${ids.length - 1}`);
    if (!(rel < 1e-3)) failures.push(`chat: top logits differ from native step ${n - 1}: ${JSON.stringify(step.top[0])} vs ${JSON.stringify(want)}`);
    step.maxLogitDiff = diff;
  }
  if (pageErrors.length) failures.push(`chat page errors: ${pageErrors.join("; ")}`);
  await page.close();

  // 4. Without WebGPU, the chat page says so.
  const context = await browser.newContext();
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true });
  });
  const bare = await context.newPage();
  await bare.goto(`${url}/chat.html`);
  await bare.waitForFunction(() => window.chatReady !== undefined, null, { timeout: 60_000 });
  const message = (await bare.textContent("#no-webgpu")) ?? "";
  if ((await bare.evaluate(() => window.chatReady)) !== "no-webgpu" || !(await bare.isVisible("#no-webgpu")) ||
      !/no WebGPU/.test(message)) {
    failures.push(`chat page without WebGPU says: '${message}'`);
  }
  await context.close();

  const rate = (x) => (x == null ? "–" : x.toFixed(3));
  console.log(`Chat, ${ref.model} (${ref.weights} weights), browser (SwiftShader) beside native GPU, same run ` +
    `(native from chat.json, ${ref.nativeSeconds.toFixed(0)} s):`);
  console.log(`  greedy tokens matched: ${matched} of ${native.generated_ids.length} (${JSON.stringify(last.ids)}), ` +
    `prompt ${last.promptTokens} tokens, finish ${last.finish}`);
  console.log(`  prefill: browser ${(last.prefillMs / 1000).toFixed(1)} s (${rate(last.prefillTokensPerSecond)} tokens/s), ` +
    `native ${t.prefill_s?.toFixed(1)} s (${rate(t.prefill_tokens_per_s)} tokens/s)`);
  console.log(`  decode: browser ${rate(last.tokensPerSecond)} tokens/s (${last.decodeSteps} steps in ${(last.decodeMs / 1000).toFixed(1)} s), ` +
    `native ${rate(t.decode_tokens_per_s)} tokens/s`);
  console.log(`  load: browser ${(loaded.loadMs / 1000).toFixed(1)} s (download included), native ${t.load_s?.toFixed(1)} s; ` +
    `GPU memory: weights ${loaded.weightBytes} bytes, activations and KV cache ${loaded.activationBytes} bytes (both as native)`);
  console.log(`  chat test took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { model: ref.model, weights: loaded.weights, context: loaded.context, prompt: ref.prompt, ids: last.ids,
    nativeIds: native.generated_ids, matched, text: last.text, promptTokens: last.promptTokens,
    prefillMs: last.prefillMs, decodeMs: last.decodeMs, decodeSteps: last.decodeSteps, tokensPerSecond: last.tokensPerSecond,
    loadMs: loaded.loadMs, phases: loaded.phases, weightBytes: loaded.weightBytes, activationBytes: loaded.activationBytes,
    nativeTimings: t, adapter: adapter.name, adapterInfo: adapter.info, generateIdsStep: step };
}

async function main() {
  const data = option("--data");
  if (!data) fail("usage: browser-test.mjs --data DIR [--chromium PATH]");
  const expectedPath = path.join(data, "expected.json");
  if (!fs.existsSync(expectedPath)) fail(`${expectedPath} is missing (web/test.sh writes it)`);
  const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
  if (!fs.existsSync(path.join(WEB_DIR, "pkg", "exprans_web.js"))) fail("web/pkg is missing: run web/build.sh");
  const executablePath = option("--chromium", process.env.CHROMIUM || "/usr/bin/chromium");

  const { server, url } = await startServer({
    mounts: { "/": WEB_DIR, "/data/": data, "/no-ranges/": { dir: data, ranges: false } },
  });
  console.log(`server: ${url}`);
  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: false, args: CHROMIUM_FLAGS, timeout: 60_000 });
  } catch (e) {
    server.close();
    fail(`cannot start Chromium (${executablePath}): ${e.message.split("\n")[0]}\n` +
      "Install it with: apt-get install -y chromium (or pass --chromium PATH / set CHROMIUM).");
  }
  console.log(`browser: Chromium ${browser.version()} ${CHROMIUM_FLAGS.join(" ")}`);

  const failures = [];
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      // Expected: the 404 of checks.js's missing-URL case, and Chrome's messages about the
      // subgroup kernel variants that checks.js compiles to record that Chrome rejects them.
      if (m.type() === "error" && m.text().includes("404 (Not Found)")) return;
      if (m.text().includes("exprans decode16 (subgroup)")) return;
      if (m.type() === "error" || m.type() === "warning") console.log(`  [page ${m.type()}] ${m.text()}`);
    });
    // Every request for a compressed file with a Range header must get 206 Partial Content.
    const ranged = [];
    page.on("response", (r) => {
      const range = r.request().headers()["range"];
      if (r.url().includes("/data/") && range) ranged.push({ url: r.url(), range, status: r.status() });
    });

    if (process.argv.includes("--embed-only")) {
      await embedTest(browser, url, data, failures);
      throw new Error("--embed-only: the other checks were not run");
    }
    if (process.argv.includes("--chat-only")) {
      await chatTest(browser, url, data, failures);
      throw new Error("--chat-only: the other checks were not run");
    }
    await page.goto(`${url}/index.html`);
    await page.waitForFunction(() => window.expransReady !== undefined, null, { timeout: 60_000 });
    const ready = await page.evaluate(() => window.expransReady);
    if (ready !== "ready") {
      const message = await page.textContent("#no-webgpu");
      throw new Error(`the demo page did not get a WebGPU device (${ready}): ${message}`);
    }
    console.log(`page: ${await page.textContent("#device")}`);

    // 1. The checks of test/checks.js, in the page.
    const result = await page.evaluate(
      async (exp) => (await import("/test/checks.js")).runAll(exp),
      expected,
    );
    for (const line of result.log ?? []) console.log(`  ${line}`);
    for (const line of result.info?.wgsl ?? []) console.log(`  WGSL in Chrome: ${line}`);
    failures.push(...result.failures);
    const urlFiles = expected.files.length;
    const perFile = expected.files.map((f) => f.tensors.filter((t) => t.bytes > 0).length);
    const minRanged = urlFiles + perFile.reduce((a, b) => a + b, 0);
    if (ranged.length < minRanged) {
      failures.push(`only ${ranged.length} range requests were made, expected at least ${minRanged}`);
    }
    for (const r of ranged.filter((r) => r.status !== 206 && !r.url.includes("no-such-file"))) {
      failures.push(`range request ${r.range} for ${r.url} got ${r.status}`);
    }
    console.log(`range requests: ${ranged.length}, all answered 206`);

    // 2. The demo page's own UI: fetch the sample by URL, decode, all PASS.
    const sample = expected.files[0];
    const adapter = await checkAdapterLine(page, "demo page", failures);
    await page.fill("#url", `data/${sample.file}`);
    await startSampling(page, ["#progress-text"]);
    await page.click("#fetch");
    await page.waitForSelector("#summary[data-state]", { timeout: 120_000 });
    const progress = await stopSampling(page);
    console.log(checkProgress("demo page", progress, failures));
    console.log(`  #progress-text: ${distinct(progress["#progress-text"]).slice(0, 3).join(" | ")} … ` +
      `${distinct(progress["#progress-text"]).at(-1)}; adapter: ${adapter.name} ${JSON.stringify(adapter.info)}`);
    const state = await page.getAttribute("#summary", "data-state");
    const summary = await page.textContent("#summary");
    const rows = await page.locator("#tensors tbody tr").count();
    const passRows = await page.locator("#tensors tbody td.pass").count();
    console.log(`demo page: ${summary}`);
    if (state !== "pass") failures.push(`demo page: ${summary}`);
    if (rows !== sample.tensors.length || passRows !== rows) {
      failures.push(`demo page: ${rows} rows, ${passRows} PASS, expected ${sample.tensors.length}`);
    }
    if (pageErrors.length) failures.push(`uncaught page errors: ${pageErrors.join("; ")}`);

    // 3. A browser without WebGPU gets a clear message, not a broken page.
    const context = await browser.newContext();
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true });
    });
    const bare = await context.newPage();
    await bare.goto(`${url}/index.html`);
    await bare.waitForFunction(() => window.expransReady !== undefined, null, { timeout: 60_000 });
    const bareState = await bare.evaluate(() => window.expransReady);
    const message = (await bare.textContent("#no-webgpu")) ?? "";
    const visible = await bare.isVisible("#no-webgpu");
    if (bareState !== "no-webgpu" || !visible || !/no WebGPU/.test(message)) {
      failures.push(`without WebGPU the page says (${bareState}, visible ${visible}): '${message}'`);
    }
    await context.close();

    printThroughput(expected, result);
    const embeddings = await embedTest(browser, url, data, failures);
    const chat = await chatTest(browser, url, data, failures);
    fs.writeFileSync(
      path.join(data, "browser-results.json"),
      JSON.stringify({ info: result.info, timings: result.timings, native: expected.native, embeddings, chat }, null, 2),
    );
  } catch (e) {
    failures.push(`test aborted: ${e.message}`);
  } finally {
    await browser.close().catch(() => {});
    server.close();
  }

  if (failures.length) {
    fail(`${failures.length} check(s) failed:\n  ${failures.join("\n  ")}`);
  }
  console.log("\nPASS: browser test");
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);
timer.unref();
main().catch((e) => fail(e.stack ?? e.message));
