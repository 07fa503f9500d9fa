// The demo page: open a compressed model (URL or local file), decode every tensor into a GPUBuffer
// on WebGPU, and show per tensor its ratio, decode time, throughput and checksum result.
//
// window.expransReady is set once the page has settled: "ready", "no-webgpu" or "no-adapter"
// (the browser test waits on it).

import init, { Decoder, ExpransFile } from "./pkg/exprans_web.js";

const $ = (id) => document.getElementById(id);
const decoders = {};

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function showNoWebGpu(message) {
  const box = $("no-webgpu");
  box.textContent = message;
  box.hidden = false;
  $("device").textContent = "";
}

/** The decoder for the current options: the first one opens the device, the others share it. */
async function decoder() {
  const portable = $("portable").checked;
  const key = portable ? "portable" : "default";
  if (!decoders[key]) {
    decoders[key] = decoders.default.then((d) => d.withOptions({ forcePortable: portable }));
  }
  return decoders[key];
}

function checksumCell(row, r, verify) {
  if (!r.ok) return cell(row, `FAIL: ${r.error}`, "fail");
  if (verify) return cell(row, r.verified ? "PASS" : "FAIL", r.verified ? "pass" : "fail");
  return cell(row, "stored PASS", "pass");
}

function addRow(r, verify) {
  const row = $("tensors").tBodies[0].insertRow();
  cell(row, r.name);
  cell(row, r.dtype, "text");
  cell(row, `[${r.shape.join(", ")}]`, "text");
  cell(row, r.encoding, "text");
  cell(row, bytes(r.storedBytes));
  cell(row, bytes(r.bytes));
  cell(row, r.ratio === null ? "–" : `${(100 * r.ratio).toFixed(1)}%`);
  cell(row, r.ok ? r.decodeMs.toFixed(2) : "–");
  const mbps = r.ok && r.encoding === "rans" && r.decodeMs > 0 ? r.bytes / r.decodeMs / 1e3 : null;
  cell(row, mbps === null ? "–" : mbps < 10 ? mbps.toPrecision(2) : mbps.toFixed(0));
  checksumCell(row, r, verify);
}

async function run(open, what) {
  const table = $("tensors");
  table.tBodies[0].replaceChildren();
  table.tFoot.replaceChildren();
  table.hidden = true;
  $("summary").textContent = "";
  $("summary").removeAttribute("data-state");
  $("fetch").disabled = $("pick").disabled = true;
  const verify = $("verify").checked;
  const bar = $("progress");
  const progressText = $("progress-text");
  bar.removeAttribute("value");
  progressText.textContent = "reading the header";
  $("progress-box").hidden = false;
  try {
    $("status").textContent = `Opening ${what}…`;
    const dec = await decoder();
    const file = await open();
    const n = file.tensors.length;
    const storedTotal = file.tensors.reduce((s, t) => s + t.storedBytes, 0);
    let done = 0;
    let fetched = 0;
    const showProgress = () => {
      bar.max = Math.max(n, 1);
      bar.value = done;
      progressText.textContent = `${done} of ${n} tensors decoded, ${bytes(fetched)} of ` +
        `${bytes(storedTotal)} ${file.source === "url" ? "fetched" : "read"}`;
    };
    showProgress();
    const how = file.rangeRequests ? "tensor by tensor with range requests" : `from ${file.source}`;
    $("status").textContent =
      `${what}: ${n} tensors, ${bytes(file.fileLen)} compressed, ${bytes(file.originalLen)} ` +
      `original (${((100 * file.fileLen) / file.originalLen).toFixed(2)}%), read ${how}.`;
    table.hidden = false;
    const started = performance.now();
    const results = await file.decodeAllToBuffers(dec, {
      verify,
      stopOnError: false,
      onTensor: (r) => {
        addRow(r, verify);
        done += 1;
        fetched += r.storedBytes;
        showProgress();
      },
    });
    const wall = performance.now() - started;
    // A real page would now use the buffers (they live on dec.device); the demo frees them.
    for (const r of results) r.buffer?.destroy();
    file.free();

    const coded = results.filter((r) => r.ok && r.encoding === "rans");
    const codedBytes = coded.reduce((s, r) => s + r.bytes, 0);
    const codedMs = coded.reduce((s, r) => s + r.decodeMs, 0);
    const failed = results.filter((r) => !r.ok || (verify && !r.verified));
    const foot = table.tFoot.insertRow();
    cell(foot, `${results.length} tensors`);
    for (let i = 0; i < 6; i++) cell(foot, "");
    cell(foot, codedMs.toFixed(1));
    cell(foot, codedMs > 0 ? (codedBytes / codedMs / 1e3).toFixed(0) : "–");
    cell(foot, failed.length ? `${failed.length} FAIL` : "PASS", failed.length ? "fail" : "pass");

    const summary = $("summary");
    summary.dataset.state = failed.length ? "fail" : "pass";
    summary.textContent =
      (failed.length
        ? `FAIL: ${failed.length} of ${results.length} tensors failed. `
        : `PASS: all ${results.length} tensors decoded${verify ? " and match their checksums" : ""}. `) +
      `Coded tensors: ${bytes(codedBytes)} in ${codedMs.toFixed(1)} ms on the GPU ` +
      `(${codedMs > 0 ? (codedBytes / codedMs / 1e3).toFixed(0) : "–"} MB/s, kernel ` +
      `${dec.kernelPath}; the first decode of each kind of tensor also compiles its pipeline); ` +
      `${wall.toFixed(0)} ms in all, reading and checking included.`;
  } catch (e) {
    $("summary").dataset.state = "fail";
    $("summary").textContent = `FAIL: ${e.message ?? e}`;
  } finally {
    $("fetch").disabled = $("pick").disabled = false;
  }
}

async function main() {
  if (!navigator.gpu) {
    showNoWebGpu(
      "This browser has no WebGPU (navigator.gpu is missing), so exprans cannot decode here. " +
        "Use a browser with WebGPU enabled, e.g. Chrome or Edge 113 or later (on Linux: " +
        "chrome://flags/#enable-unsafe-webgpu or --enable-unsafe-webgpu), and open the page from " +
        "https:// or http://localhost (WebGPU needs a secure context).",
    );
    window.expransReady = "no-webgpu";
    return;
  }
  await init();
  try {
    decoders.default = Decoder.create();
    const dec = await decoders.default;
    const a = dec.adapter ?? {};
    // wgpu gets only GPUAdapterInfo.description, which browsers often leave empty; adapterName
    // falls back to the browser's vendor and architecture.
    const name = dec.adapterName || "the browser gives no adapter name";
    $("device").textContent =
      `WebGPU adapter: ${name}, ${a.device_type}; decode kernel: ${dec.kernelPath}` +
      `${dec.kernelPath === "portable" ? " (wgpu 30 does not enable subgroups in browsers)" : ""}; ` +
      `largest storage binding ${bytes(a.max_storage_buffer_binding_size)}.`;
  } catch (e) {
    showNoWebGpu(
      `This browser has WebGPU, but exprans could not open a GPU device: ${e.message ?? e}. ` +
        "WebGPU may be disabled for this GPU or driver (see chrome://gpu).",
    );
    window.expransReady = "no-adapter";
    return;
  }
  $("fetch").disabled = $("pick").disabled = false;
  $("fetch").addEventListener("click", () => {
    const url = $("url").value.trim();
    run(() => ExpransFile.fromUrl(url), url);
  });
  $("pick").addEventListener("change", () => {
    const f = $("pick").files[0];
    if (f) run(() => ExpransFile.fromBlob(f), f.name);
  });
  window.expransReady = "ready";
}

main().catch((e) => {
  showNoWebGpu(`exprans failed to start: ${e.message ?? e}`);
  window.expransReady = "error";
});
