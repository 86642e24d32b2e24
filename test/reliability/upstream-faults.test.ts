import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBlackhole } from '../helpers/blackhole.js';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { parseExposition } from '../helpers/exposition.js';

let stalling: TestUpstream;
let late: TestUpstream;
let flaky: TestUpstream;
let failing: TestUpstream;
let receiver: OtlpReceiver;
let blackhole: Awaited<ReturnType<typeof startBlackhole>>;
let gateway: RunningGateway;
let failingMode: 'fail' | 'ok' = 'fail';
const flakyPlan = new Map<string, number>(); // request id → failures left

beforeAll(async () => {
  stalling = await startUpstream((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': '1000000' });
    res.write(Buffer.alloc(1000, 97)); // then nothing: the body stalls
  });
  late = await startUpstream((req, res) => {
    req.resume();
    setTimeout(() => res.end('late'), 700);
  });
  flaky = await startUpstream((req, res) => {
    req.resume();
    const id = String(req.headers['x-request-id']);
    const left = flakyPlan.get(id) ?? 0;
    if (left > 0) {
      flakyPlan.set(id, left - 1);
      if (req.url!.includes('status')) {
        res.writeHead(503).end('busy');
      } else {
        req.socket.destroy(); // reset before any response byte
      }
      return;
    }
    res.end('ok');
  });
  failing = await startUpstream((req, res) => {
    req.resume();
    if (failingMode === 'fail') res.writeHead(503).end('down');
    else res.end('back');
  });
  receiver = await startOtlpReceiver();
  blackhole = await startBlackhole();
  gateway = await startGateway(
    {
      upstreams: {
        dns: { url: 'http://no-such-host.invalid:8080' },
        blackhole: { url: `http://127.0.0.1:${blackhole.port}`, connectTimeoutMs: 300 },
        stalling: { url: stalling.url },
        late: { url: late.url },
        flaky: { url: flaky.url },
        // Same server, breaker out of the way: the budget alone must limit the retries.
        flakyNoBreaker: { url: flaky.url, circuitBreaker: { failureThreshold: 1000 } },
        failing: { url: failing.url, circuitBreaker: { failureThreshold: 3, cooldownMs: 800 } },
      },
      routes: [
        { name: 'dns', prefix: '/dns', upstream: 'dns' },
        { name: 'blackhole', prefix: '/blackhole', upstream: 'blackhole', timeoutMs: 2000 },
        { name: 'stalling', prefix: '/stalling', upstream: 'stalling', timeoutMs: 400 },
        { name: 'late', prefix: '/late', upstream: 'late', timeoutMs: 300 },
        { name: 'flaky', prefix: '/flaky', upstream: 'flaky', retries: { attempts: 2 } },
        { name: 'flaky-budget', prefix: '/budget', upstream: 'flakyNoBreaker', retries: { attempts: 1, budgetPercent: 10 } },
        { name: 'failing', prefix: '/failing', upstream: 'failing' },
      ],
      health: { intervalMs: 200 },
    },
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
  );
});

afterAll(async () => {
  await gateway?.stop();
  blackhole?.close();
  await Promise.all([late?.close(), stalling?.close(), flaky?.close(), failing?.close(), receiver?.close()]);
});

async function spansFor(traceId: string, count: number) {
  await receiver.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= count);
  return receiver.spans.filter((x) => x.traceId === traceId);
}

describe('upstream failures map to defined answers', () => {
  it('DNS failure → 502 upstream_unreachable, CLIENT span error.type=connect', async () => {
    const res = await send(`${gateway.url}/dns/x`);
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ error: 'upstream_unreachable', traceId: res.headers['x-trace-id'] });
    const client = (await spansFor(res.headers['x-trace-id'] as string, 2)).find((s) => s.kind === 'CLIENT')!;
    expect(client.attributes['error.type']).toBe('connect');
    expect(client.status.code).toBe(2);
  });

  it('connect timeout → 504 upstream_timeout within the connect timeout', async () => {
    const started = Date.now();
    const res = await send(`${gateway.url}/blackhole/x`);
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ error: 'upstream_timeout' });
    expect(Date.now() - started).toBeLessThan(1900);
    const client = (await spansFor(res.headers['x-trace-id'] as string, 2)).find((s) => s.kind === 'CLIENT')!;
    expect(client.attributes['error.type']).toBe('timeout');
  });

  it('a short route timeout is kept: 300 ms against a 700 ms upstream is a 504, not a late 200', async () => {
    const started = Date.now();
    const res = await send(`${gateway.url}/late/x`);
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(650);
  });

  it('a body that stalls mid-stream is cut after the route timeout; span and log say timeout', async () => {
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest(`${gateway.url}/stalling/x`, { headers: { 'x-request-id': 'stall-1' } }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve('ended'));
        res.on('error', () => resolve('cut'));
        res.on('aborted', () => resolve('cut'));
      });
      req.on('error', () => resolve('cut'));
      req.end();
    });
    expect(outcome).toBe('cut');
    expect(Date.now() - started).toBeLessThan(2500);
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id === 'stall-1');
    expect(line.error_type).toBe('timeout');
  });
});

describe('retries', () => {
  it('retries an idempotent request after a reset, each try its own CLIENT span with resend_count', async () => {
    flakyPlan.set('retry-1', 2);
    const res = await send(`${gateway.url}/flaky/x`, { headers: { 'x-request-id': 'retry-1' } });
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok');
    const spans = await spansFor(res.headers['x-trace-id'] as string, 4);
    const clients = spans.filter((s) => s.kind === 'CLIENT').sort((a, b) => Number(a.startNs - b.startNs));
    expect(clients).toHaveLength(3);
    expect(clients.map((c) => c.attributes['http.request.resend_count'])).toEqual([undefined, 1, 2]);
    expect(clients.map((c) => c.status.code)).toEqual([2, 2, 0]);
    const server = spans.find((s) => s.kind === 'SERVER')!;
    for (const c of clients) expect(c.parentSpanId).toBe(server.spanId);
    expect(flaky.requests.filter((r) => r.headers['x-request-id'] === 'retry-1')).toHaveLength(3);
    // Each try told the upstream its own client span.
    const parents = flaky.requests.filter((r) => r.headers['x-request-id'] === 'retry-1').map((r) => String(r.headers.traceparent).split('-')[2]);
    expect(parents).toEqual(clients.map((c) => c.spanId));
  });

  it('retries a configured status (503) and forwards the final answer', async () => {
    flakyPlan.set('retry-2', 1);
    const res = await send(`${gateway.url}/flaky/status`, { headers: { 'x-request-id': 'retry-2' } });
    expect(res.status).toBe(200);
  });

  it('never retries a request with a body or a non-idempotent method', async () => {
    flakyPlan.set('retry-3', 1);
    const res = await send(`${gateway.url}/flaky/x`, { method: 'POST', headers: { 'x-request-id': 'retry-3' }, body: 'payload' });
    expect(res.status).toBe(502);
    expect(flaky.requests.filter((r) => r.headers['x-request-id'] === 'retry-3')).toHaveLength(1);
  });

  it('stops retrying when the budget is spent, so retries cannot multiply load', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `budget-${i}`);
    for (const id of ids) flakyPlan.set(id, 5);
    for (const id of ids) await send(`${gateway.url}/budget/x`, { headers: { 'x-request-id': id } });
    const sent = flaky.requests.filter((r) => String(r.headers['x-request-id']).startsWith('budget-')).length;
    // 30 requests; budget 10 % of requests plus a burst of 3 → at most 30 + 3 + 3 tries.
    expect(sent).toBeGreaterThan(30);
    expect(sent).toBeLessThanOrEqual(36);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, answers 503 at once, reports it, then closes after a good trial', async () => {
    failingMode = 'fail';
    for (let i = 0; i < 3; i++) expect((await send(`${gateway.url}/failing/x`)).status).toBe(503);
    const before = failing.requests.length;
    const open = await send(`${gateway.url}/failing/x`);
    expect(open.status).toBe(503);
    expect(open.json()).toMatchObject({ error: 'upstream_circuit_open', traceId: open.headers['x-trace-id'] });
    expect(Number(open.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(failing.requests.length).toBe(before); // never reached the upstream
    await gateway.waitForLog((l) => l.level === 'warn' && l.circuit_to === 'open' && l.upstream === 'failing');

    const ready = await send(`${gateway.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.json<{ upstreams: Record<string, { circuit: string }> }>().upstreams.failing!.circuit).toBe('open');
    const metrics = parseExposition((await send(`${gateway.url}/metrics`)).body);
    expect(metrics.get('gateway_upstream_circuit_state')!.samples.find((s) => s.labels.gateway_upstream === 'failing')!.value).toBe(1);

    failingMode = 'ok';
    await new Promise((r) => setTimeout(r, 900));
    const trial = await send(`${gateway.url}/failing/x`);
    expect(trial.status).toBe(200);
    await gateway.waitForLog((l) => l.circuit_to === 'closed' && l.upstream === 'failing');
    expect((await send(`${gateway.url}/failing/y`)).status).toBe(200);
  });
});
