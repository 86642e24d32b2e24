#!/usr/bin/env node
/**
 * A small demo HTTP service for the compose stack. Several copies run under different names
 * (users → orders → inventory) and call each other, so one request through the gateway produces a
 * trace that crosses several services. It uses the gateway's own OpenTelemetry setup (same SDK
 * bootstrap, same span helpers, same Prometheus views), so its spans and metrics look like the
 * gateway's.
 *
 * Endpoints:
 *   GET  /health            → 200 (no span, no metric)
 *   GET  /metrics           → Prometheus text format
 *   ANY  /status/NNN        → answers NNN (no downstream calls)
 *   GET  /slow?ms=N         → answers after N ms (max 10 s), then calls downstream
 *   ANY  anything else      → simulated work, then one traced call to each downstream
 *
 * Environment:
 *   OTEL_SERVICE_NAME or SERVICE_NAME   the service's name (required; not "tracing-gateway")
 *   SERVICE_PORT (8080), SERVICE_HOST (0.0.0.0)
 *   DOWNSTREAM_URLS      comma-separated base URLs called on every business request
 *   ERROR_RATE (0)       probability of answering 500 on a business request
 *   SLOW_RATE (0)        probability of adding SLOW_MS (800) to a business request
 *   WORK_MS (5)          base simulated work, ±50 % jitter
 *   DOWNSTREAM_TIMEOUT_MS (5000)
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { metrics, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';
import { Pool } from 'undici';
import { startTelemetry } from '../telemetry/sdk.js';
import { failSpan, injectTraceHeaders, normalizeMethod, startClientSpan, startServerSpan } from '../tracing/spans.js';
import { failWith, numberEnv as envNumber } from './env.js';

const fail: (message: string) => never = failWith('demo-service');
const numberEnv = (name: string, fallback: number, min: number, max: number): number => envNumber(name, fallback, min, max, fail);

// The SDK reads OTEL_SERVICE_NAME when it starts, so the name is settled before starting it.
const serviceName = process.env.OTEL_SERVICE_NAME ?? process.env.SERVICE_NAME;
if (!serviceName || serviceName === 'tracing-gateway') {
  fail('set OTEL_SERVICE_NAME (or SERVICE_NAME) to this service\'s name, e.g. "users"; it must not be "tracing-gateway"');
}
process.env.OTEL_SERVICE_NAME = serviceName;
const telemetry = startTelemetry();

const port = numberEnv('SERVICE_PORT', 8080, 0, 65_535);
const host = process.env.SERVICE_HOST || '0.0.0.0';
const errorRate = numberEnv('ERROR_RATE', 0, 0, 1);
const slowRate = numberEnv('SLOW_RATE', 0, 0, 1);
const slowMs = numberEnv('SLOW_MS', 800, 0, 10_000);
const workMs = numberEnv('WORK_MS', 5, 0, 1_000);
const downstreamTimeoutMs = numberEnv('DOWNSTREAM_TIMEOUT_MS', 5_000, 1, 60_000);

interface Downstream {
  name: string;
  url: URL;
  pool: Pool;
}

const downstreams: Downstream[] = (process.env.DOWNSTREAM_URLS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((raw) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      fail(`DOWNSTREAM_URLS: "${raw}" is not a URL`);
    }
    if (url.protocol !== 'http:') fail(`DOWNSTREAM_URLS: "${raw}" must be an http:// URL`);
    // The host name is the compose service name, which is what the service graph should show.
    return { name: url.hostname, url, pool: new Pool(url.origin, { connections: 32, keepAliveTimeout: 4_000 }) };
  });

// Same instrument names as the gateway: the shared views give them the same Prometheus names
// (http_server_request_duration_seconds, …), so one dashboard query shape fits every service.
const meter = metrics.getMeter('demo-service');
const serverDuration = meter.createHistogram('http.server.request.duration', { unit: 's', description: 'Duration of HTTP requests handled by the demo service.' });
const clientDuration = meter.createHistogram('http.client.request.duration', { unit: 's', description: 'Duration of calls from the demo service to its downstreams.' });
meter
  .createObservableCounter('process.cpu.time', { unit: 's', description: 'CPU time used by the process.' })
  .addCallback((result) => {
    const usage = process.cpuUsage();
    result.observe(usage.user / 1e6, { 'cpu.mode': 'user' });
    result.observe(usage.system / 1e6, { 'cpu.mode': 'system' });
  });
meter
  .createObservableGauge('process.memory.usage', { unit: 'By', description: 'Resident set size of the process.' })
  .addCallback((result) => result.observe(process.memoryUsage.rss()));

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const STATUS_RE = /^\/status\/([1-5]\d\d)$/;

/** A bounded set of route templates keeps the metric series bounded, whatever the paths. */
function routeOf(path: string): string {
  if (STATUS_RE.test(path)) return '/status/{code}';
  if (path === '/slow') return '/slow';
  return '/*';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface CallResult {
  service: string;
  status: number;
  error?: string;
}

/** One traced call to a downstream: CLIENT span, exactly one traceparent, request ID passed on. */
async function callDownstream(parent: Context, traceFlags: number, d: Downstream, requestId: string, path: string): Promise<CallResult> {
  const url = new URL(path, d.url);
  const { span, context } = startClientSpan(parent, {
    method: 'GET',
    upstreamName: d.name,
    hostname: url.hostname,
    port: Number(url.port || 80),
    urlFull: url.href,
  });
  span.setAttribute('peer.service', d.name);
  const headers: Record<string, string | string[]> = { 'x-request-id': requestId, 'user-agent': `demo-service/${serviceName}` };
  // The request's W3C flags (sampled + Level 2 random bit) travel on, as the gateway does.
  injectTraceHeaders(context, headers, traceFlags);
  const started = performance.now();
  let status = 0;
  try {
    const res = await d.pool.request({
      path: url.pathname + url.search,
      method: 'GET',
      headers,
      headersTimeout: downstreamTimeoutMs,
      bodyTimeout: downstreamTimeoutMs,
    });
    status = res.statusCode;
    await res.body.dump();
    span.setAttribute('http.response.status_code', status);
    if (status >= 400) failSpan(span, String(status), undefined, `${d.name} answered ${status}`);
    return { service: d.name, status };
  } catch (err) {
    const e = err as Error & { code?: string };
    const kind = e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' ? 'timeout' : (e.code ?? 'error');
    failSpan(span, kind, e, `${d.name}: ${e.message}`);
    return { service: d.name, status: 0, error: kind };
  } finally {
    const attrs: Record<string, string | number> = { 'http.request.method': 'GET', 'server.address': d.name };
    if (status > 0) attrs['http.response.status_code'] = status;
    clientDuration.record((performance.now() - started) / 1000, attrs);
    span.end();
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

async function handle(req: IncomingMessage, res: ServerResponse, span: Span, ctx: Context, traceFlags: number, requestId: string, url: URL): Promise<number> {
  // Request bodies are not used; drain them so keep-alive connections stay reusable.
  req.resume();
  const status = STATUS_RE.exec(url.pathname);
  if (status) {
    const code = Number(status[1]);
    sendJson(res, code, { service: serviceName, status: code });
    return code;
  }
  let delay = workMs * (0.5 + Math.random());
  if (url.pathname === '/slow') delay = Math.min(Number(url.searchParams.get('ms') ?? 1000) || 0, 10_000);
  else if (Math.random() < slowRate) {
    delay += slowMs;
    span.setAttribute('demo.slow', true);
  }
  await sleep(delay);
  if (url.pathname !== '/slow' && Math.random() < errorRate) {
    span.setAttribute('demo.injected_error', true);
    sendJson(res, 500, { service: serviceName, error: 'injected_error' });
    return 500;
  }
  const calls = await Promise.all(downstreams.map((d) => callDownstream(ctx, traceFlags, d, requestId, `/from-${serviceName}`)));
  const failed = calls.find((c) => c.status === 0 || c.status >= 500);
  const code = failed ? 502 : 200;
  sendJson(res, code, { service: serviceName, path: url.pathname, slept_ms: Math.round(delay), downstream: calls });
  return code;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://demo');
  if (url.pathname === '/health') return sendJson(res, 200, { status: 'ok', service: serviceName });
  if (url.pathname === '/metrics') return telemetry.prometheus.getMetricsRequestHandler(req, res);

  const started = performance.now();
  const method = normalizeMethod(req.method);
  const inboundId = req.headers['x-request-id'];
  const requestId = typeof inboundId === 'string' && REQUEST_ID_RE.test(inboundId) ? inboundId : randomUUID();
  const route = routeOf(url.pathname);
  const { span, context, traceFlags } = startServerSpan({
    req,
    method,
    path: url.pathname,
    query: url.search ? url.search.slice(1) : undefined,
    requestId,
    trustInbound: true,
  });
  span.updateName(`${method} ${route}`);
  span.setAttribute('http.route', route);

  const finish = (code: number) => {
    span.setAttribute('http.response.status_code', code);
    if (code >= 500) {
      span.setAttribute('error.type', String(code));
      span.setStatus({ code: SpanStatusCode.ERROR, message: `answered ${code}` });
    }
    span.end();
    serverDuration.record((performance.now() - started) / 1000, {
      'http.request.method': method,
      'http.route': route,
      'http.response.status_code': code,
    });
  };
  handle(req, res, span, context, traceFlags, requestId, url).then(finish, (err: Error) => {
    failSpan(span, 'internal', err, err.message);
    if (!res.headersSent) sendJson(res, 500, { service: serviceName, error: 'internal' });
    else res.destroy();
    finish(500);
  });
});
server.keepAliveTimeout = 10_000;

server.listen(port, host, () => {
  const address = server.address();
  const bound = typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address);
  process.stdout.write(
    `${JSON.stringify({
      level: 'info',
      time: new Date().toISOString(),
      service: serviceName,
      msg: 'demo service listening',
      address: bound,
      downstream: downstreams.map((d) => d.url.origin),
      error_rate: errorRate,
      slow_rate: slowRate,
      span_export: telemetry.exportTarget,
    })}\n`,
  );
});

let stopping = false;
function shutdown(): void {
  if (stopping) process.exit(0);
  stopping = true;
  server.close();
  server.closeIdleConnections();
  // Bounded: a stuck exporter must not keep the container from stopping.
  const timer = setTimeout(() => process.exit(0), 5_000);
  timer.unref();
  void Promise.allSettled([telemetry.shutdown(), ...downstreams.map((d) => d.pool.close())]).then(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
