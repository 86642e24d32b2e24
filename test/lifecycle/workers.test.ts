// The gateway with several proxy threads (`workers`): real gateway process, real upstream, real
// OTLP receiver, real Prometheus tooling. Every request is served by one of the threads; metrics,
// trace lookup, health and shutdown must answer for all of them as one gateway.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { parseExposition } from '../helpers/exposition.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'workers-test-token-0123456789';
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

let upstream: TestUpstream;
let receiver: OtlpReceiver;
let gateway: RunningGateway;
let admin: string;
/** X-Trace-ID → the worker whose access-log line recorded it. */
const served = new Map<string, number>();
const REQUESTS = 40;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  receiver = await startOtlpReceiver();
  gateway = await startGateway(
    {
      workers: 2,
      admin: { port: 0, token: TOKEN, metricsAndHealth: true },
      upstreams: { api: { url: upstream.url } },
      routes: [{ name: 'api', prefix: '/api', upstream: 'api' }],
    },
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
  );
  const listening = await gateway.waitForLog((l) => l.msg.startsWith('admin listening'));
  admin = `http://${String(listening.address)}`;
  // A new connection per request, so that the kernel spreads them over the threads.
  for (let i = 0; i < REQUESTS; i++) {
    const res = await send(`${gateway.url}/api/item/${i}`);
    expect(res.status).toBe(200);
    served.set(String(res.headers['x-trace-id']), -1);
  }
  for (const traceId of served.keys()) {
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.trace_id === traceId);
    served.set(traceId, Number(line.worker));
  }
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await receiver?.close();
  await upstream?.close();
});

describe('workers: 2', () => {
  it('starts two proxy threads on one port, and both serve requests', () => {
    const ready = gateway.logs.find((l) => l.msg === 'gateway listening')!;
    expect(ready.workers).toBe(2);
    // 40 connections all hashed to one thread would be a 1 in 2^39 chance.
    expect(new Set(served.values())).toEqual(new Set([1, 2]));
  });

  it('serves one /metrics for both threads, on the proxy port and the admin port', async () => {
    for (const base of [gateway.url, admin]) {
      const res = await send(`${base}/metrics`);
      expect(res.status).toBe(200);
      const families = parseExposition(res.body);
      const count = families.get('http_server_request_duration_seconds')!.samples.find((s) => s.name.endsWith('_count') && s.labels.http_route === '/api/*');
      // Every request counted once, whichever thread served it.
      expect(count!.value).toBe(REQUESTS);
      const buckets = families.get('http_server_request_duration_seconds')!.samples.filter((s) => s.labels.le === '+Inf');
      expect(buckets.map((s) => s.value)).toEqual([REQUESTS]);
      // Per-thread runtime series carry the thread; process-wide ones appear once.
      const loop = families.get('nodejs_eventloop_utilization_ratio')!.samples;
      expect(loop.map((s) => s.labels.worker).sort()).toEqual(['1', '2']);
      expect(families.get('process_memory_usage_bytes')!.samples).toHaveLength(1);
      expect(families.get('target_info')!.samples).toHaveLength(1);
      expect(families.get('gateway_upstream_up')!.samples.find((s) => s.labels.gateway_upstream === 'api')!.value).toBe(1);
      expect(res.body.match(/^# TYPE http_server_request_duration_seconds /gm)).toHaveLength(1);
    }
  });

  it.runIf(hasPromtool)('merged /metrics passes promtool check metrics', async () => {
    const { body } = await send(`${gateway.url}/metrics`);
    const result = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(result.stderr + result.stdout).toBe('');
    expect(result.status).toBe(0);
  });

  it('looks up traces served by either thread, by trace ID and by request ID', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const worker of [1, 2]) {
      const traceId = [...served].find(([, w]) => w === worker)![0];
      const res = await send(`${admin}/admin/traces/${traceId}`, { headers: auth });
      expect(res.status).toBe(200);
      const summary = res.json<{ traceId: string; source: string; requestId: string; spanCount?: number; spans?: unknown[] }>();
      expect(summary.traceId).toBe(traceId);
      expect(summary.source).toBe('gateway');
      expect(summary.spanCount).toBe(2);
      const byRequest = await send(`${admin}/admin/requests/${summary.requestId}`, { headers: auth });
      expect(byRequest.status).toBe(200);
      expect(byRequest.json<{ traceId: string }>().traceId).toBe(traceId);
    }
    const missing = await send(`${admin}/admin/traces/${'ab'.repeat(16)}`, { headers: auth });
    expect(missing.status).toBe(404);
    // The store's limits are the configured totals, shared out over the threads.
    expect(missing.json<{ reasons: string[] }>().reasons.join(' ')).toContain('most recent 20000 spans / 32 MiB');
  });

  it('reports readiness for both threads', async () => {
    const res = await send(`${admin}/health/ready`);
    expect(res.status).toBe(200);
    expect(res.json<{ status: string; upstreams: Record<string, { status: string; circuit: string }> }>()).toMatchObject({ status: 'ready', upstreams: { api: { status: 'up', circuit: 'closed' } } });
  });

  it('exports both threads\' spans under one service instance, and stops cleanly on SIGTERM', async () => {
    const traceIds = new Set(served.keys());
    const code = await gateway.stop('SIGTERM');
    expect(code).toBe(0);
    const spans = await receiver.waitFor((all) => all.filter((s) => traceIds.has(s.traceId)).length >= 2 * REQUESTS);
    const ours = spans.filter((s) => traceIds.has(s.traceId));
    expect(ours).toHaveLength(2 * REQUESTS);
    const instances = new Set(ours.map((s) => s.resource['service.instance.id']));
    expect(instances.size).toBe(1);
    expect(gateway.logs.some((l) => l.msg === 'shutdown complete: spans flushed')).toBe(true);
  });
});
