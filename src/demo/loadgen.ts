#!/usr/bin/env node
/**
 * Load generator for the compose profile `load`: steady, mixed traffic through the gateway at a
 * bounded rate, until stopped (or for DURATION_S seconds). The mix matches the compose routes and
 * includes upstream 5xx, unmatched paths (404), slow requests and requests that exceed the orders
 * route timeout (504), so every dashboard panel and the trace views have something to show.
 *
 * Every request is the root CLIENT span of a trace ("loadgen" in the service graph) made with the
 * gateway's span helpers; the gateway continues that trace.
 *
 * Environment:
 *   TARGET_URL (http://gateway:8080)   RATE (10 req/s, 0.1–200)   CONCURRENCY (32, 1–256)
 *   DURATION_S (0 = until SIGTERM)     SLOW_MS (1500)             TIMEOUT_PROBE_MS (4000)
 *   REQUEST_TIMEOUT_MS (15000)         REPORT_EVERY_S (10)
 */
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { Pool } from 'undici';
import { startTelemetry } from '../telemetry/sdk.js';
import { failSpan, injectTraceHeaders, startClientSpan } from '../tracing/spans.js';
import { failWith, numberEnv as envNumber } from './env.js';

const fail: (message: string) => never = failWith('loadgen');
const numberEnv = (name: string, fallback: number, min: number, max: number): number => envNumber(name, fallback, min, max, fail);

// Settled before the SDK starts, which reads it once.
if (!process.env.OTEL_SERVICE_NAME || process.env.OTEL_SERVICE_NAME === 'tracing-gateway') process.env.OTEL_SERVICE_NAME = 'loadgen';
const telemetry = startTelemetry();

let target: URL;
try {
  target = new URL(process.env.TARGET_URL || 'http://gateway:8080');
} catch {
  fail(`TARGET_URL="${process.env.TARGET_URL}" is not a URL`);
}
const rate = numberEnv('RATE', 10, 0.1, 200);
const concurrency = numberEnv('CONCURRENCY', 32, 1, 256);
const durationS = numberEnv('DURATION_S', 0, 0, 86_400);
const slowMs = numberEnv('SLOW_MS', 1_500, 0, 30_000);
const timeoutProbeMs = numberEnv('TIMEOUT_PROBE_MS', 4_000, 0, 30_000);
const requestTimeoutMs = numberEnv('REQUEST_TIMEOUT_MS', 15_000, 100, 120_000);
const reportEveryS = numberEnv('REPORT_EVERY_S', 10, 1, 3_600);

interface Kind {
  name: string;
  weight: number;
  method: 'GET' | 'POST';
  path: () => string;
}

const id = () => Math.floor(Math.random() * 10_000);
/** Weights per 1000 requests. The 5xx share (~3–4 % with the compose error rates) stays under the alert thresholds. */
const MIX: Kind[] = [
  { name: 'users', weight: 595, method: 'GET', path: () => `/api/users/${id()}` },
  { name: 'orders', weight: 190, method: 'GET', path: () => `/api/orders/${id()}` },
  { name: 'inventory', weight: 100, method: 'GET', path: () => `/api/inventory/items/${id()}` },
  { name: 'create_order', weight: 40, method: 'POST', path: () => '/api/orders' },
  // Unmatched paths: 404 from the gateway itself. Random paths must not add metric series.
  { name: 'unmatched_404', weight: 30, method: 'GET', path: () => `/nowhere/${id()}` },
  { name: 'upstream_404', weight: 15, method: 'GET', path: () => '/api/users/status/404' },
  { name: 'upstream_5xx', weight: 15, method: 'GET', path: () => `/api/${['users', 'orders', 'inventory'][id() % 3]}/status/503` },
  { name: 'slow', weight: 10, method: 'GET', path: () => `/api/users/slow?ms=${slowMs}` },
  // The orders route times out before this answers: 504 upstream_timeout.
  { name: 'timeout', weight: 5, method: 'GET', path: () => `/api/orders/slow?ms=${timeoutProbeMs}` },
];
const totalWeight = MIX.reduce((sum, k) => sum + k.weight, 0);

function pick(): Kind {
  let r = Math.random() * totalWeight;
  for (const k of MIX) {
    r -= k.weight;
    if (r < 0) return k;
  }
  return MIX[0]!;
}

const pool = new Pool(target.origin, { connections: concurrency, keepAliveTimeout: 4_000 });
const stats = { sent: 0, answered: 0, failed: 0, skipped: 0, byStatus: {} as Record<string, number>, byKind: {} as Record<string, number>, errors: {} as Record<string, number> };
let inFlight = 0;

async function fire(kind: Kind): Promise<void> {
  const path = kind.path();
  const { span, context } = startClientSpan(ROOT_CONTEXT, {
    method: kind.method,
    upstreamName: 'gateway',
    hostname: target.hostname,
    port: Number(target.port || 80),
    urlFull: new URL(path, target).href,
  });
  span.updateName(`${kind.method} ${kind.name}`);
  span.setAttribute('peer.service', 'tracing-gateway');
  const headers: Record<string, string | string[]> = { 'user-agent': 'tracing-gateway-loadgen' };
  let body: string | undefined;
  if (kind.method === 'POST') {
    body = JSON.stringify({ item: id(), quantity: 1 + (id() % 5) });
    headers['content-type'] = 'application/json';
  }
  injectTraceHeaders(context, headers);
  inFlight++;
  stats.sent++;
  stats.byKind[kind.name] = (stats.byKind[kind.name] ?? 0) + 1;
  try {
    const res = await pool.request({ path, method: kind.method, headers, body, headersTimeout: requestTimeoutMs, bodyTimeout: requestTimeoutMs });
    await res.body.dump();
    stats.answered++;
    stats.byStatus[res.statusCode] = (stats.byStatus[res.statusCode] ?? 0) + 1;
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 400) failSpan(span, String(res.statusCode), undefined, `gateway answered ${res.statusCode}`);
  } catch (err) {
    const e = err as Error & { code?: string };
    const code = e.code ?? 'error';
    stats.failed++;
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    failSpan(span, code, e, e.message);
  } finally {
    inFlight--;
    span.end();
  }
}

function report(msg: string): void {
  process.stdout.write(
    `${JSON.stringify({ level: 'info', time: new Date().toISOString(), service: 'loadgen', msg, target: target.origin, rate, in_flight: inFlight, ...stats })}\n`,
  );
}

// A token bucket refilled every tick keeps the rate steady; at the concurrency cap requests are
// skipped (and counted), never queued, so a slow gateway cannot build up an unbounded backlog.
const TICK_MS = 50;
let budget = 0;
const ticker = setInterval(() => {
  budget = Math.min(budget + (rate * TICK_MS) / 1000, Math.max(1, rate));
  while (budget >= 1) {
    budget -= 1;
    if (inFlight >= concurrency) {
      stats.skipped++;
      continue;
    }
    void fire(pick());
  }
}, TICK_MS);
const reporter = setInterval(() => report('loadgen progress'), reportEveryS * 1000);
report('loadgen started');

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) process.exit(0);
  stopping = true;
  clearInterval(ticker);
  clearInterval(reporter);
  const deadline = Date.now() + Math.min(requestTimeoutMs, 10_000);
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  report('loadgen finished');
  await Promise.race([Promise.allSettled([telemetry.shutdown(), pool.close()]), new Promise((r) => setTimeout(r, 5_000))]);
  // A bounded run that never got an answer means the target was unreachable the whole time.
  process.exit(durationS > 0 && stats.answered === 0 ? 1 : 0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
if (durationS > 0) setTimeout(() => void stop(), durationS * 1000);
