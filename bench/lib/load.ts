// Load generation: Debian's wrk when installed (a C load generator costs far less CPU than a
// Node one on two shared cores), else a simple undici loop inside the bench process.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { start, stop } from './procs.ts';

export const WRK = '/usr/bin/wrk';

export interface LoadResult {
  requests: number;
  durationS: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses with status >= 400 (wrk's "Non-2xx or 3xx") plus connect/read/write/timeout errors. */
  errors: number;
  errorDetail: Record<string, number>;
}

export function loadTool(): string {
  return existsSync(WRK) ? `wrk (${WRK}, 1 thread, --latency)` : 'undici load loop in the bench process (wrk not found; its CPU shares the cores)';
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

/** `wrk -t1 -c<c> -d<s>s --latency -s report.lua <url>`; the Lua `done` hook prints exact figures as JSON. */
async function runWrk(url: string, connections: number, seconds: number, benchDir: string): Promise<LoadResult> {
  // wrk takes whole seconds only.
  seconds = Math.max(1, Math.round(seconds));
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', join(benchDir, 'wrk-report.lua'), url];
  let out = '';
  const proc = start('wrk', WRK, args, { onStdout: (chunk) => (out += chunk) });
  // wrk ends on its own after `seconds`; the bound only guards against a hung run.
  const timer = setTimeout(() => void stop(proc, 'SIGKILL', 1000), (seconds + 20) * 1000);
  const code = await proc.exited;
  clearTimeout(timer);
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${out}\n${proc.tail()}`);
  const j = JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
  const durationS = j.duration_us / 1e6;
  const errorDetail = { status: j.status, connect: j.connect, read: j.read, write: j.write, timeout: j.timeout };
  return {
    requests: j.requests,
    durationS,
    reqPerSec: j.requests / durationS,
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    errors: j.status + j.connect + j.read + j.write + j.timeout,
    errorDetail,
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Fallback: `connections` sequential request loops over one undici Pool, for `seconds`. */
async function runUndici(url: string, connections: number, seconds: number): Promise<LoadResult> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections, pipelining: 1 });
  const latencies: number[] = [];
  let status = 0;
  let socket = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const path = u.pathname + u.search;
  async function loop(): Promise<void> {
    while (performance.now() < end) {
      const s = performance.now();
      try {
        const res = await pool.request({ path, method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
        await res.body.dump();
        if (res.statusCode >= 400) status++;
        latencies.push(performance.now() - s);
      } catch {
        socket++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
  await Promise.all(Array.from({ length: connections }, loop));
  const durationS = (performance.now() - t0) / 1000;
  await pool.close();
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    durationS,
    reqPerSec: latencies.length / durationS,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    errors: status + socket,
    errorDetail: { status, socket },
  };
}

export function runLoad(url: string, connections: number, seconds: number, benchDir: string): Promise<LoadResult> {
  return existsSync(WRK) ? runWrk(url, connections, seconds, benchDir) : runUndici(url, connections, seconds);
}
