// Replays a list of requests through Node's fetch or http module (keep-alive) and writes what
// it received. usage: node client.mjs fetch|http JOBS.json OUT.json
import fs from "node:fs";
import http from "node:http";
import https from "node:https";

const [mode, jobsFile, outFile] = process.argv.slice(2);
const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));
const out = [];
const now = () => performance.now() / 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });

function viaHttp(job) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const u = new URL(job.url);
    const tls = u.protocol === "https:";
    const req = (tls ? https : http).request({ host: u.hostname, port: u.port || (tls ? 443 : 80), path: u.pathname + u.search,
      method: job.method, agent: tls ? tlsAgent : agent, headers: job.body !== null ? { "content-type": "application/json" } : {} }, (res) => {
      const chunks = [], times = [];
      res.on("data", (b) => { chunks.push(b); times.push(now()); });
      res.on("end", () => resolve({ status: res.statusCode, ctype: res.headers["content-type"] || "", chunks, times, t0 }));
    });
    req.on("error", reject);
    if (job.body !== null) req.write(job.body);
    req.end();
  });
}

async function viaFetch(job) {
  const t0 = now();
  const r = await fetch(job.url, { method: job.method, body: job.body ?? undefined,
    headers: job.body !== null ? { "content-type": "application/json" } : {} });
  const chunks = [], times = [];
  for await (const b of r.body) { chunks.push(Buffer.from(b)); times.push(now()); }
  return { status: r.status, ctype: r.headers.get("content-type") || "", chunks, times, t0 };
}

for (const job of jobs) {
  const r = mode === "http" ? await viaHttp(job) : await viaFetch(job);
  out.push({ status: r.status, ctype: r.ctype, body: Buffer.concat(r.chunks).toString("base64"), reads: r.chunks.length,
    t_first: r.times.length ? r.times[0] - r.t0 : 0, t_last: r.times.length ? r.times.at(-1) - r.t0 : 0 });
}
fs.writeFileSync(outFile, JSON.stringify(out));
agent.destroy();
