// The in-page half of the browser test (web/test/browser-test.mjs imports this into the demo page
// and calls runAll). Everything here runs in Chromium, on WebGPU: the decoded bytes are read back
// by the page's own WebGPU code on the decoder's device, and their CRC-32C is computed in plain
// JavaScript (../crc32c.js), to be compared with the CRC-32C of the original tensors computed
// natively (expected.json, written by examples/web_fixtures.rs).

import init, { Decoder, ExpransFile, crc32c as wasmCrc32c, webgpuAvailable } from "../pkg/exprans_web.js";
import { crc32c } from "../crc32c.js";

/** Copies `len` bytes of `buffer` back with the page's own commands on `device`. */
async function readBack(device, buffer, len) {
  const size = Math.max(4, Math.ceil(len / 4) * 4);
  const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Uint8Array(staging.getMappedRange()).slice(0, len);
  staging.unmap();
  staging.destroy();
  return out;
}

/** Runs a compute shader of the page's own that copies a decoded buffer word by word into a new
 * buffer (the decoded buffer bound as read-only storage), and returns the copy's bytes. */
async function copyWithOwnShader(device, buffer, len) {
  const words = Math.max(1, Math.ceil(len / 4));
  const module = device.createShaderModule({
    code: `
      @group(0) @binding(0) var<storage, read> src: array<u32>;
      @group(0) @binding(1) var<storage, read_write> dst: array<u32>;
      @compute @workgroup_size(64)
      fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if (id.x < arrayLength(&dst)) { dst[id.x] = src[id.x]; }
      }`,
  });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const dst = device.createBuffer({ size: words * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer, size: words * 4 } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(Math.ceil(words / 64));
  pass.end();
  device.queue.submit([encoder.finish()]);
  const out = await readBack(device, dst, len);
  dst.destroy();
  return out;
}

/** The rate of a plain u32 copy shader on `device` over `bytes` bytes (the memory-bound ceiling
 * the decoder's throughput compares with), MB/s, best of 3 after a warm-up. */
async function copyRate(device, bytes) {
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
  const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
  const module = device.createShaderModule({
    code: `
      @group(0) @binding(0) var<storage, read> src: array<u32>;
      @group(0) @binding(1) var<storage, read_write> dst: array<u32>;
      @compute @workgroup_size(64)
      fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
        let i = id.y * n.x * 64u + id.x;
        if (i < arrayLength(&dst)) { dst[i] = src[i]; }
      }`,
  });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }],
  });
  const groups = bytes / 4 / 64;
  const x = Math.min(groups, 32768);
  let best = Infinity;
  for (let k = 0; k < 4; k++) {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    pass.end();
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    if (k > 0) best = Math.min(best, performance.now() - t0);
  }
  src.destroy();
  dst.destroy();
  return bytes / best / 1e3;
}

const TYPED = {
  BF16: Uint16Array, F16: Uint16Array, U16: Uint16Array, I16: Int16Array, F32: Float32Array,
  I32: Int32Array, U32: Uint32Array, F64: Float64Array, I64: BigInt64Array, U64: BigUint64Array,
  I8: Int8Array,
};

/** What a browser needs in front of the subgroup kernel's WGSL (see step (e) of runAll). */
const SUBGROUP_PREFIX = "enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n";

const hex = (n) => (n >>> 0).toString(16).padStart(8, "0");

/** Runs every check; resolves to {failures: [string], info, timings}. Never throws for a failed
 * check: each becomes a failure line. */
export async function runAll(expected) {
  const failures = [];
  const log = [];
  const check = (ok, message) => {
    if (!ok) failures.push(message);
    return ok;
  };
  const timings = [];
  const step = async (name, f) => {
    const t0 = performance.now();
    try {
      await f();
    } catch (e) {
      failures.push(`${name}: threw ${e?.message ?? e}`);
    }
    log.push(`${name}: ${(performance.now() - t0).toFixed(0)} ms`);
  };

  await init();
  if (!check(webgpuAvailable(), "navigator.gpu is missing")) return { failures, log };
  const decoder = await Decoder.create();
  const device = decoder.device;
  check(device instanceof GPUDevice, "decoder.device is not a GPUDevice");
  check(decoder.queue === device.queue, "decoder.queue is not decoder.device.queue");
  const split = await decoder.withOptions({ maxBindingSize: expected.splitBindingSize });
  const portable = await decoder.withOptions({ forcePortable: true });
  check(portable.kernelPath === "portable", `forcePortable gave kernel ${portable.kernelPath}`);
  const jsAdapter = await navigator.gpu.requestAdapter();
  const info = {
    adapter: decoder.adapter,
    kernelPath: decoder.kernelPath,
    // What the browser offers, seen from JavaScript (wgpu 30 does not map "subgroups").
    browser: {
      vendor: jsAdapter?.info?.vendor, architecture: jsAdapter?.info?.architecture,
      subgroups: jsAdapter?.features?.has("subgroups") ?? false,
      subgroupSizes: [jsAdapter?.info?.subgroupMinSize, jsAdapter?.info?.subgroupMaxSize],
      shaderF16: jsAdapter?.features?.has("shader-f16") ?? false,
    },
  };
  check(wasmCrc32c(new TextEncoder().encode("123456789")) === 0xe3069283, "wasm crc32c('123456789')");

  /** Checks decoded bytes of every tensor of a file against expected.json. */
  const compare = (what, f, name, got) => {
    const want = f.tensors.find((t) => t.name === name);
    if (!check(want, `${what}: unexpected tensor '${name}'`)) return;
    check(got.length === want.bytes, `${what}: '${name}' has ${got.length} bytes, expected ${want.bytes}`);
    const crc = crc32c(got);
    check(crc === want.crc32c, `${what}: '${name}' decodes to CRC-32C ${hex(crc)}, native ${hex(want.crc32c)}`);
  };

  let conformanceBytes = null;
  for (const f of expected.files) {
    const url = `/data/${encodeURIComponent(f.file)}`;

    // (a) By URL, tensor by tensor with range requests, into GPUBuffers.
    await step(`${f.file}: fromUrl + decodeAllToBuffers(verify) + page readback`, async () => {
      const file = await ExpransFile.fromUrl(url);
      check(file.rangeRequests && file.source === "url", `${f.file}: not opened with range requests`);
      check(file.fileLen === f.fileBytes, `${f.file}: fileLen ${file.fileLen}, expected ${f.fileBytes}`);
      check(file.originalLen === f.originalBytes, `${f.file}: originalLen ${file.originalLen}`);
      const list = file.tensors;
      check(
        list.length === f.tensors.length && list.every((t, i) => t.name === f.tensors[i].name &&
          t.dtype === f.tensors[i].dtype && t.bytes === f.tensors[i].bytes),
        `${f.file}: tensor list differs from the original file's`,
      );
      check(list.filter((t) => t.encoding === "rans").length === f.codedTensors, `${f.file}: coded count`);
      let seen = 0;
      const results = await file.decodeAllToBuffers(decoder, { verify: true, onTensor: () => seen++ });
      check(seen === list.length, `${f.file}: onTensor called ${seen} times`);
      for (const r of results) {
        check(r.ok && r.verified === true, `${f.file}: '${r.name}' not verified`);
        check(r.buffer instanceof GPUBuffer, `${f.file}: '${r.name}' buffer is not a GPUBuffer`);
        check(r.bufferSize >= r.bytes && r.bufferSize % 4 === 0, `${f.file}: '${r.name}' bufferSize`);
        compare(`${f.file} (url, GPUBuffer)`, f, r.name, await readBack(device, r.buffer, r.bytes));
      }
      // The page's own shader reads the largest decoded buffer.
      const big = results.reduce((a, b) => (b.bytes > a.bytes ? b : a));
      compare(`${f.file} (page shader)`, f, big.name, await copyWithOwnShader(device, big.buffer, big.bytes));
      for (const r of results) r.buffer.destroy();

      // A second, timed pass (pipelines compiled, no read-back): decode throughput.
      const timed = await file.decodeAllToBuffers(decoder, { verify: false });
      const coded = timed.filter((r) => r.encoding === "rans");
      const bytes = coded.reduce((s, r) => s + r.bytes, 0);
      const ms = coded.reduce((s, r) => s + r.decodeMs, 0);
      const readMs = timed.reduce((s, r) => s + r.readMs, 0);
      timings.push({ file: f.file, kernelPath: decoder.kernelPath, decodedBytes: bytes, decodeMs: ms, readMs,
        megabytesPerSecond: bytes / ms / 1e3, tensors: coded.length });
      for (const r of timed) r.buffer.destroy();

      const v = await file.verify(decoder);
      check(v.ok && v.tensors.length === list.length, `${f.file}: verify() failed: ${JSON.stringify(v.tensors.filter((t) => !t.ok))}`);
      file.free();
    });

    // (b) From a Blob, into typed arrays.
    const whole = await (await fetch(url)).arrayBuffer();
    if (f.file.startsWith("conformance")) conformanceBytes = whole;
    await step(`${f.file}: fromBlob + decodeToArray`, async () => {
      const file = await ExpransFile.fromBlob(new Blob([whole]));
      check(file.source === "blob" && !file.rangeRequests, `${f.file}: blob source`);
      for (const t of file.tensors) {
        const a = await file.decodeToArray(decoder, t.name);
        compare(`${f.file} (blob, array)`, f, t.name, a.data);
        const Want = TYPED[t.dtype] ?? Uint8Array;
        check(a.values instanceof Want, `${f.file}: '${t.name}' values are ${a.values?.constructor?.name}, expected ${Want.name}`);
        check(a.values.buffer === a.data.buffer, `${f.file}: '${t.name}' values do not view data`);
      }
      file.free();
    });

    // (c) From an ArrayBuffer, with the portable kernel and, for the conformance file (whose
    //     blocks fit), a small storage-binding limit: tensors decoded in pieces.
    await step(`${f.file}: fromBytes + portable (and split) decoders`, async () => {
      const file = await ExpransFile.fromBytes(whole);
      check(file.source === "bytes", `${f.file}: bytes source`);
      const decoders = [["portable", portable]];
      if (f.file.startsWith("conformance")) decoders.push(["split", split]);
      for (const [what, dec] of decoders) {
        const results = await file.decodeAllToBuffers(dec, { verify: true, usage: GPUBufferUsage.VERTEX });
        for (const r of results) {
          check(r.buffer.usage & GPUBufferUsage.VERTEX && r.buffer.usage & GPUBufferUsage.STORAGE,
            `${f.file}: '${r.name}' buffer usage ${r.buffer.usage}`);
          compare(`${f.file} (bytes, ${what})`, f, r.name, await readBack(device, r.buffer, r.bytes));
          r.buffer.destroy();
        }
      }
      file.free();
    });
  }

  // (c') A server that ignores Range: the first answer is the whole file, kept in memory.
  await step("fromUrl on a server without range requests", async () => {
    const f = expected.files[0];
    const file = await ExpransFile.fromUrl(`/no-ranges/${encodeURIComponent(f.file)}`);
    check(!file.rangeRequests && file.source === "bytes", "no-range server: not read from memory");
    for (const t of file.tensors) {
      compare(`${f.file} (no-range server)`, f, t.name, (await file.decodeToArray(decoder, t.name)).data);
    }
    file.free();
  });

  // (d) Damage is reported, never decoded silently.
  await step("damaged files", async () => {
    const good = new Uint8Array(conformanceBytes);
    const file = await ExpransFile.fromBytes(good);
    const victim = file.tensors.find((t) => t.encoding === "rans");
    const bad = good.slice();
    bad[victim.storedOffset + (victim.storedBytes >> 1)] ^= 0x40;
    const damaged = await ExpransFile.fromBytes(bad);
    try {
      await damaged.decodeToBuffer(decoder, victim.name);
      check(false, "a damaged tensor decoded without an error");
    } catch (e) {
      check(/checksum/.test(e.message) && e.message.includes(victim.name), `damaged tensor: unexpected error '${e.message}'`);
    }
    const v = await damaged.verify(decoder);
    const failed = v.tensors.filter((t) => !t.ok).map((t) => t.name);
    check(!v.ok && failed.length === 1 && failed[0] === victim.name, `verify() of a damaged file: ${JSON.stringify(failed)}`);
    const all = await damaged.decodeAllToBuffers(decoder, { stopOnError: false });
    check(all.filter((r) => !r.ok).length === 1, "decodeAllToBuffers(stopOnError: false) of a damaged file");
    for (const r of all) r.buffer?.destroy();
    let rejected = false;
    try {
      await damaged.decodeAllToBuffers(decoder);
    } catch {
      rejected = true;
    }
    check(rejected, "decodeAllToBuffers of a damaged file did not reject");

    // A rejected decodeAllToBuffers destroys the buffers it made for the tensors before the
    // damaged one (the page never got them). Damage the last coded tensor, so that some exist.
    const last = file.tensors.filter((t) => t.encoding === "rans").at(-1);
    const bad2 = good.slice();
    bad2[last.storedOffset + (last.storedBytes >> 1)] ^= 0x40;
    const damaged2 = await ExpransFile.fromBytes(bad2);
    const names = new Set(file.tensors.map((t) => t.name));
    const made = [];
    const destroyed = new WeakSet();
    const { createBuffer } = GPUDevice.prototype;
    const { destroy } = GPUBuffer.prototype;
    GPUDevice.prototype.createBuffer = function (d) {
      const b = createBuffer.call(this, d);
      if (names.has(d?.label)) made.push(b);
      return b;
    };
    GPUBuffer.prototype.destroy = function () {
      destroyed.add(this);
      return destroy.call(this);
    };
    try {
      await damaged2.decodeAllToBuffers(decoder);
      check(false, "decodeAllToBuffers of a file with its last coded tensor damaged did not reject");
    } catch {
      // expected
    } finally {
      GPUDevice.prototype.createBuffer = createBuffer;
      GPUBuffer.prototype.destroy = destroy;
    }
    const alive = made.filter((b) => !destroyed.has(b)).length;
    check(made.length > 0 && alive === 0,
      `rejected decodeAllToBuffers left ${alive} of ${made.length} tensor buffers alive`);
    damaged2.free();

    const header = good.slice();
    header[200] ^= 0x01; // inside the header JSON
    let headerError = "";
    try {
      await ExpransFile.fromBytes(header);
    } catch (e) {
      headerError = e.message;
    }
    check(headerError !== "", "a damaged header was accepted");
    let missing = "";
    try {
      await file.decodeToBuffer(decoder, "no such tensor");
    } catch (e) {
      missing = e.message;
    }
    check(/no tensor named/.test(missing), `unknown tensor name: '${missing}'`);
    let notFound = "";
    try {
      await ExpransFile.fromUrl("/data/no-such-file.exprans.safetensors");
    } catch (e) {
      notFound = e.message;
    }
    check(/404/.test(notFound), `missing URL: '${notFound}'`);
    file.free();
  });

  // (e) Every WGSL module of the decoder compiles in this browser's own shader compiler (Tint),
  //     for every pipeline constant. The subgroup kernel, which wgpu 30 never selects in a
  //     browser (its WebGPU backend does not map the "subgroups" feature), is compiled on a
  //     device of the page's own with "subgroups", with SUBGROUP_PREFIX prepended: Chrome needs
  //     `enable subgroups;`, and Tint's uniformity analysis rejects the kernel's shuffle (in a
  //     loop whose bound is a subgroupMax) unless `subgroup_uniformity` is turned off. What each
  //     variant gives is recorded for the report.
  await step("WGSL modules compile in the browser", async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const hasSubgroups = adapter.features.has("subgroups");
    const dev = await adapter.requestDevice({ requiredFeatures: hasSubgroups ? ["subgroups"] : [] });
    const compile = async (code, label) => {
      const module = dev.createShaderModule({ code, label });
      const messages = (await module.getCompilationInfo()).messages.filter((x) => x.type === "error");
      return { module, errors: messages.map((x) => `${x.lineNum}:${x.linePos} ${x.message}`) };
    };
    info.wgsl = [];
    for (const m of expected.wgslModules) {
      if (m.usesSubgroups && !hasSubgroups) {
        info.wgsl.push(`${m.name}: not compiled, the adapter has no subgroups`);
        continue;
      }
      if (m.usesSubgroups) {
        for (const [what, prefix] of [["as is", ""], ["with 'enable subgroups;' only", "enable subgroups;\n"]]) {
          const { errors } = await compile(prefix + m.source, m.name);
          info.wgsl.push(`${m.name} ${what}: ${errors.length ? `rejected (${errors[0]})` : "accepted"}`);
        }
      }
      const prefix = m.usesSubgroups ? SUBGROUP_PREFIX : "";
      const { module, errors } = await compile(prefix + m.source, m.name);
      check(errors.length === 0, `${m.name} does not compile in the browser: ${errors.join("; ")}`);
      const masks = m.codedMasks.length ? m.codedMasks : [null];
      for (const entryPoint of m.entryPoints) {
        for (const mask of masks) {
          const constants = mask === null ? undefined : { CODED_MASK: mask };
          await dev.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint, constants } });
        }
      }
      const how = m.usesSubgroups ? ` with ${JSON.stringify(SUBGROUP_PREFIX)}` : "";
      info.wgsl.push(`${m.name}${how}: ${m.entryPoints.length * masks.length} pipeline(s) compiled`);
    }
    dev.destroy();
  });

  await step("copy shader rate", async () => {
    info.copyU32MegabytesPerSecond = await copyRate(device, 16 << 20);
  });

  return { failures, info, timings, log };
}
