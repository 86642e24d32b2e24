/**
 * The compose stack's demo services and load generator, run as compose runs them (compiled JS,
 * the gateway's OTel SDK setup) behind the real gateway configured from stack/gateway.yaml, with
 * spans exported to a real OTLP/HTTP receiver: one request produces one trace across the gateway
 * and the three services; failures mark the right spans; the load generator's requests are the
 * root spans of the traces the gateway continues.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { freePort, freePorts, hasBinary, readYaml, spawnNode, startDemoService, type DemoService } from './helpers.js';

let receiver: OtlpReceiver;
let services: DemoService[] = [];
const extra: DemoService[] = [];
let gateway: RunningGateway;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
  // As in compose.yaml: users → orders → inventory.
  const [pInventory, pOrders, pUsers] = (await freePorts(3)) as [number, number, number];
  services = await Promise.all([
    startDemoService('inventory', otel, pInventory),
    startDemoService('orders', { ...otel, DOWNSTREAM_URLS: `http://127.0.0.1:${pInventory}` }, pOrders),
    startDemoService('users', { ...otel, DOWNSTREAM_URLS: `http://127.0.0.1:${pOrders}` }, pUsers),
  ]);
  const config = readYaml('stack/gateway.yaml');
  for (const s of services) config.upstreams[s.name].url = s.url;
  gateway = await startGateway(config, { ...otel, OTEL_SERVICE_NAME: 'tracing-gateway' });
}, 30_000);

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([...services, ...extra].map((s) => s.stop()));
  await receiver?.close();
});

const serviceOf = (s: ReceivedSpan) => s.resource['service.name'];
const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
const find = (spans: ReceivedSpan[], service: string, kind: string) => {
  const found = spans.filter((s) => serviceOf(s) === service && s.kind === kind);
  expect(found, `one ${kind} span from ${service}`).toHaveLength(1);
  return found[0]!;
};

describe('demo services behind the gateway', () => {
  it('one request through the gateway is one trace across gateway → users → orders → inventory', async () => {
    const res = await send(`${gateway.url}/api/users/42`, { headers: { 'x-request-id': 'stack-demo-1' } });
    expect(res.status).toBe(200);
    const body = res.json<{ service: string; downstream: Array<{ status: number }> }>();
    expect(body.service).toBe('users');
    expect(body.downstream).toEqual([{ service: '127.0.0.1', status: 200 }]);
    const traceId = String(res.headers['x-trace-id']);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    // SERVER + CLIENT for the gateway, users and orders; SERVER for inventory (no downstream).
    await receiver.waitFor((all) => all.filter((s) => s.traceId === traceId).length >= 7);
    const spans = spansOf(traceId);
    expect(spans).toHaveLength(7);
    const gwServer = find(spans, 'tracing-gateway', 'SERVER');
    const gwClient = find(spans, 'tracing-gateway', 'CLIENT');
    const chain = ['users', 'orders', 'inventory'].map((name) => ({ name, server: find(spans, name, 'SERVER'), client: name === 'inventory' ? undefined : find(spans, name, 'CLIENT') }));

    expect(gwServer.parentSpanId).toBe('');
    expect(gwClient.parentSpanId).toBe(gwServer.spanId);
    let caller = gwClient;
    for (const { name, server, client } of chain) {
      // Each service continues the caller's CLIENT span: exactly one traceparent per hop.
      expect(server.parentSpanId, `${name} SERVER parent`).toBe(caller.spanId);
      expect(server.name).toBe('GET /*');
      expect(server.attributes['http.route']).toBe('/*');
      expect(server.attributes['http.response.status_code']).toBe(200);
      // The request ID travels with the trace.
      expect(server.attributes['gateway.request_id']).toBe('stack-demo-1');
      if (client) {
        expect(client.parentSpanId).toBe(server.spanId);
        expect(client.attributes['http.response.status_code']).toBe(200);
        caller = client;
      }
    }
  });

  it('an upstream 5xx marks the upstream SERVER span and the gateway CLIENT span as errors', async () => {
    const res = await send(`${gateway.url}/api/users/status/503`);
    expect(res.status).toBe(503);
    const traceId = String(res.headers['x-trace-id']);
    await receiver.waitFor((all) => all.filter((s) => s.traceId === traceId).length >= 3);
    const spans = spansOf(traceId);
    const usersServer = find(spans, 'users', 'SERVER');
    expect(usersServer.name).toBe('GET /status/{code}');
    expect(usersServer.status.code).toBe(2);
    expect(usersServer.attributes['error.type']).toBe('503');
    expect(find(spans, 'tracing-gateway', 'CLIENT').status.code).toBe(2);
    // No downstream call for /status/NNN.
    expect(spans.filter((s) => serviceOf(s) === 'orders')).toEqual([]);
  });

  it('injects errors, slowness and downstream failures as configured', async () => {
    const deadPort = await freePort();
    const [failing, slow, orphan] = await Promise.all([
      startDemoService('flaky', { ERROR_RATE: '1' }),
      startDemoService('sluggish', { SLOW_RATE: '1', SLOW_MS: '300' }),
      startDemoService('orphan', { DOWNSTREAM_URLS: `http://127.0.0.1:${deadPort}` }),
    ]);
    extra.push(failing, slow, orphan);

    const err = await send(`${failing.url}/anything`);
    expect(err.status).toBe(500);
    expect(err.json()).toEqual({ service: 'flaky', error: 'injected_error' });

    const started = performance.now();
    expect((await send(`${slow.url}/anything`)).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);

    const down = await send(`${orphan.url}/anything`);
    expect(down.status).toBe(502);
    expect(down.json<{ downstream: Array<{ status: number; error: string }> }>().downstream).toEqual([{ service: '127.0.0.1', status: 0, error: 'ECONNREFUSED' }]);

    // Health and metrics are not business requests: no error injection, no span.
    expect((await send(`${failing.url}/health`)).status).toBe(200);
  });

  it('serves Prometheus metrics with the same families as the gateway and bounded route labels', async () => {
    const users = services.find((s) => s.name === 'users')!;
    for (let i = 0; i < 5; i++) await send(`${users.url}/random/path/${i}`);
    const res = await send(`${users.url}/metrics`);
    expect(res.status).toBe(200);
    const routes = new Set([...res.body.matchAll(/^http_server_request_duration_seconds_count\{[^}]*http_route="([^"]*)"/gm)].map((m) => m[1]));
    expect([...routes].sort()).toEqual(['/*', '/status/{code}']);
    for (const family of ['http_client_request_duration_seconds', 'nodejs_eventloop_delay_p99_seconds', 'process_cpu_time_seconds_total', 'process_memory_usage_bytes', 'v8js_memory_heap_used_bytes']) {
      expect(res.body).toContain(`# TYPE ${family} `);
    }
    expect(res.body).toMatch(/^target_info\{[^}]*service_name="users"/m);
    if (hasBinary('promtool')) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
      expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    }
  });

  it('refuses to start under the gateway\'s service name', async () => {
    const child = spawnNode('dist/src/demo/service.js', { OTEL_SERVICE_NAME: 'tracing-gateway', SERVICE_PORT: '0' });
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toContain('OTEL_SERVICE_NAME');
  });
});

describe('load generator', () => {
  it('sends mixed traffic at the configured rate for DURATION_S, as root spans the gateway continues', async () => {
    const child = spawnNode('dist/src/demo/loadgen.js', {
      TARGET_URL: gateway.url,
      RATE: '40',
      DURATION_S: '2',
      SLOW_MS: '50',
      TIMEOUT_PROBE_MS: '50',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    });
    expect(await child.exited, child.stderr()).toBe(0);
    const lines = child.stdout().trim().split('\n').map((l) => JSON.parse(l));
    const final = lines.find((l) => l.msg === 'loadgen finished');
    expect(final, child.stdout()).toBeDefined();
    // Bounded rate: about 80 requests in 2 s, never a burst beyond the bucket.
    expect(final.sent).toBeGreaterThanOrEqual(50);
    expect(final.sent).toBeLessThanOrEqual(100);
    expect(final.answered + final.failed).toBe(final.sent);
    expect(final.failed).toBe(0);
    expect(final.byStatus['200']).toBeGreaterThan(final.sent / 2);
    expect(Object.keys(final.byKind).length).toBeGreaterThanOrEqual(3);

    // A loadgen CLIENT span is the parent of the gateway's SERVER span in the same trace.
    const spans = await receiver.waitFor((all) => {
      const roots = all.filter((s) => serviceOf(s) === 'loadgen' && s.kind === 'CLIENT');
      return roots.some((r) => all.some((s) => serviceOf(s) === 'tracing-gateway' && s.kind === 'SERVER' && s.parentSpanId === r.spanId));
    });
    const root = spans.find((r) => serviceOf(r) === 'loadgen' && r.kind === 'CLIENT')!;
    expect(root.parentSpanId).toBe('');
  });

  it('exits 1 when a bounded run never reaches its target, and rejects an unbounded rate', async () => {
    const deadPort = await freePort();
    const unreachable = spawnNode('dist/src/demo/loadgen.js', { TARGET_URL: `http://127.0.0.1:${deadPort}`, RATE: '5', DURATION_S: '1' });
    expect(await unreachable.exited).toBe(1);
    const tooFast = spawnNode('dist/src/demo/loadgen.js', { TARGET_URL: gateway.url, RATE: '5000' });
    expect(await tooFast.exited).toBe(1);
    expect(tooFast.stderr()).toContain('RATE=5000');
  });
});
