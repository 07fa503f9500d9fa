#!/usr/bin/env node
// A plain static file server for the demo page and the browser test.
//
//   node web/serve.mjs [--port 8000] [--data DIR]
//
// Listens on 127.0.0.1 only. Serves web/ at "/" and DIR (default: ../target/web-test, where
// web/test.sh and web/build.sh --data put compressed files) at "/data/". GET and HEAD; single
// byte ranges ("Range: bytes=a-b", "a-", "-n") answer 206 with Content-Range, which is what
// ExpransFile.fromUrl needs to fetch a model tensor by tensor. No directory listings, nothing
// outside the served directories, no caching (every answer says no-store).

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = path.dirname(fileURLToPath(import.meta.url));

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

/** Parses a Range header against a file of `size` bytes: {start, end} (end exclusive), null to
 * send the whole file (no header, or a form this server does not do: several ranges), or
 * "unsatisfiable". */
export function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [first, last] = [m[1], m[2]];
  if (first === "" && last === "") return null;
  let start, end;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size;
  } else {
    start = Number(first);
    end = last === "" ? size : Math.min(Number(last) + 1, size);
    if (last !== "" && Number(last) < start) return null;
  }
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/** The file a URL path names under one of the mounts, and whether that mount answers ranges;
 * null when none. */
function resolve(mounts, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  // Longest mount prefix first, so that "/data/" wins over "/".
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  for (const prefix of prefixes) {
    if (!decoded.startsWith(prefix)) continue;
    const mount = typeof mounts[prefix] === "string" ? { dir: mounts[prefix] } : mounts[prefix];
    const root = path.resolve(mount.dir);
    let rel = decoded.slice(prefix.length);
    if (rel === "" || rel.endsWith("/")) rel += "index.html";
    const file = path.resolve(root, "." + path.posix.normalize("/" + rel));
    if (file !== root && !file.startsWith(root + path.sep)) return null;
    return { file, ranges: mount.ranges !== false };
  }
  return null;
}

/** Starts the server. mounts: {"/": dir, "/data/": dir, ...}; a mount may also be {dir, ranges:
 * false}, a server that ignores Range headers (for tests). Resolves to {server, url}. */
export function startServer({ mounts, port = 0, host = "127.0.0.1", log = () => {} }) {
  const server = http.createServer((req, res) => {
    const send = (status, text, headers = {}) => {
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...headers });
      res.end(req.method === "HEAD" ? undefined : text + "\n");
      log(`${req.method} ${req.url} ${status}`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, "method not allowed", { Allow: "GET, HEAD" });
    }
    const urlPath = new URL(req.url, "http://localhost").pathname;
    const found = resolve(mounts, urlPath);
    const file = found?.file;
    let stat;
    try {
      stat = file && fs.statSync(file);
    } catch {
      stat = null;
    }
    if (!stat || !stat.isFile()) return send(404, "not found");

    const size = stat.size;
    const headers = {
      "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "Accept-Ranges": found.ranges ? "bytes" : "none",
      "Cache-Control": "no-store",
    };
    const range = found.ranges ? parseRange(req.headers.range, size) : null;
    if (range === "unsatisfiable") {
      return send(416, "range not satisfiable", { "Content-Range": `bytes */${size}` });
    }
    let status = 200;
    let start = 0;
    let end = size;
    if (range) {
      status = 206;
      ({ start, end } = range);
      headers["Content-Range"] = `bytes ${start}-${end - 1}/${size}`;
    }
    headers["Content-Length"] = String(end - start);
    res.writeHead(status, headers);
    log(`${req.method} ${req.url} ${status}${range ? ` ${start}-${end - 1}` : ""}`);
    if (req.method === "HEAD" || end === start) return res.end();
    fs.createReadStream(file, { start, end: end - 1 })
      .on("error", () => res.destroy())
      .pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      const { port: bound } = server.address();
      ok({ server, url: `http://${host}:${bound}` });
    });
  });
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  const port = Number(opt("--port", "8000"));
  const data = path.resolve(opt("--data", path.join(WEB_DIR, "..", "target", "web-test")));
  const verbose = args.includes("--verbose");
  startServer({
    mounts: { "/": WEB_DIR, "/data/": data },
    port,
    log: verbose ? (line) => console.log(line) : () => {},
  }).then(
    ({ url }) => {
      console.log(`serving ${WEB_DIR} at ${url}/ and ${data} at ${url}/data/`);
      if (!fs.existsSync(data)) console.log(`(${data} does not exist yet: run web/build.sh --data)`);
    },
    (e) => {
      console.error(`serve.mjs: ${e.message}`);
      process.exit(1);
    },
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
