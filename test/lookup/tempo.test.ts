import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSummary } from '../../src/lookup/summary.js';
import { spansFromTempo, traceIdsFromSearch } from '../../src/lookup/tempo.js';
import { ROOT } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { adminGet, startAdminGateway, tracedRequest, type AdminGateway } from './helpers.js';

const TRACE_FIXTURE = readFileSync(`${ROOT}/test/fixtures/tempo/trace-by-id-v2.json`, 'utf8');
const SEARCH_FIXTURE = readFileSync(`${ROOT}/test/fixtures/tempo/search-request-id.json`, 'utf8');
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const EMPTY_ID = '5b8efff798038103d269b633813fc60c';
const FAILING_ID = 'eee19b7ec3c1b1740000000000000001';
const GARBAGE_ID = 'eee19b7ec3c1b1740000000000000002';

interface FakeTempo {
  url: string;
  /** Every request path+query received. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A real HTTP server standing in for Tempo's query frontend under a path prefix (as behind a
 * reverse proxy), answering with the recorded-format fixtures.
 */
async function startFakeTempo(): Promise<FakeTempo> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://tempo');
    requests.push(`${url.pathname}${url.search}`);
    const json = (status: number, body: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    if (!url.pathname.startsWith('/tempo/')) return json(404, '404 page not found');
    const path = url.pathname.slice('/tempo'.length);
    if (path === `/api/v2/traces/${TRACE_ID}`) return json(200, TRACE_FIXTURE);
    if (path === `/api/v2/traces/${EMPTY_ID}`) return json(200, '{"trace":{},"metrics":{"inspectedBytes":"0"}}');
    if (path === `/api/v2/traces/${FAILING_ID}`) return res.writeHead(500, { 'content-type': 'text/plain' }).end('rpc error: code = Unavailable desc = no queriers\n');
    if (path === `/api/v2/traces/${GARBAGE_ID}`) return res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
    if (path.startsWith('/api/v2/traces/')) return json(404, '{"metrics":{"inspectedBytes":"16384"}}');
    if (path === '/api/search') {
      const q = url.searchParams.get('q');
      if (q === '{ span.gateway.request_id = "req-7f3a9c" }') return json(200, SEARCH_FIXTURE);
      return json(200, '{"traces":[],"metrics":{"inspectedBytes":"512","completedJobs":1,"totalJobs":1}}');
    }
    json(404, '404 page not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/tempo`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A port that was just free: nothing listens there. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('Tempo 3.0 response format (contract, recorded fixtures)', () => {
  it('decodes /api/v2/traces: base64 IDs, enum names, string int64s, omitted zero values', () => {
    const spans = spansFromTempo(JSON.parse(TRACE_FIXTURE));
    expect(spans).toHaveLength(5);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([TRACE_ID]));
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect([...byId.keys()]).toEqual(['b7ad6b7169203331', '00f067aa0ba902b7', '53995c3f42cd8ad8', 'c0ffee0000000001', 'a1b2c3d4e5f60718']);
    const gw = byId.get('b7ad6b7169203331')!;
    expect(gw).toMatchObject({ parentSpanId: undefined, service: 'tracing-gateway', kind: 'SERVER', status: 'ERROR', statusMessage: 'answered 500' });
    expect(gw.attributes['http.response.status_code']).toBe(500);
    expect(gw.durationMs).toBeCloseTo(48.2, 3);
    expect(byId.get('00f067aa0ba902b7')).toMatchObject({ parentSpanId: 'b7ad6b7169203331', kind: 'CLIENT' });
    expect(byId.get('53995c3f42cd8ad8')).toMatchObject({ parentSpanId: '00f067aa0ba902b7', service: 'users-service', kind: 'SERVER', statusMessage: undefined });
    expect(byId.get('c0ffee0000000001')).toMatchObject({ kind: 'INTERNAL', status: 'UNSET', attributes: {} });
    const db = byId.get('a1b2c3d4e5f60718')!;
    expect(db.events[0]!.attributes['exception.message']).toBe('canceling statement due to statement timeout');
    expect(db.startMs - gw.startMs).toBeCloseTo(3, 3);
  });

  it('also reads hex IDs (the OTLP JSON spec) and the v1 "batches" envelope', () => {
    const hexed = TRACE_FIXTURE.replace(/"(traceId|spanId|parentSpanId)": "([^"]+)"/g, (_m, k: string, v: string) => `"${k}": "${Buffer.from(v, 'base64').toString('hex').toUpperCase()}"`);
    const v1 = JSON.stringify({ batches: JSON.parse(hexed).trace.resourceSpans });
    expect(spansFromTempo(JSON.parse(v1)).map((s) => s.spanId)).toEqual(spansFromTempo(JSON.parse(TRACE_FIXTURE)).map((s) => s.spanId));
  });

  it('survives malformed data: a parent cycle still gives a summary instead of hanging', () => {
    const spans = spansFromTempo(JSON.parse(TRACE_FIXTURE));
    spans[0]!.parentSpanId = 'a1b2c3d4e5f60718'; // the gateway's root now "descends" from the db span
    const s = buildSummary(TRACE_ID, spans, 'tempo');
    expect(s.spans.length).toBe(5);
    expect(new Set(s.spans.map((sp) => sp.spanId)).size).toBe(5);
  });

  it('decodes /api/search: hex trace IDs with their leading zeros restored', () => {
    expect(traceIdsFromSearch(JSON.parse(SEARCH_FIXTURE))).toEqual([TRACE_ID]);
    expect(traceIdsFromSearch({ traces: [] })).toEqual([]);
  });
});

describe('GET /admin/… with admin.tempoUrl', () => {
  let tempo: FakeTempo;
  let upstream: TestUpstream;
  let gateway: AdminGateway;
  let unreachable: AdminGateway;

  beforeAll(async () => {
    [tempo, upstream] = await Promise.all([startFakeTempo(), startUpstream()]);
    const routes = [{ name: 'users', prefix: '/api/users', url: upstream.url }];
    [gateway, unreachable] = await Promise.all([
      startAdminGateway(routes, { tempoUrl: tempo.url, grafanaUrl: 'http://grafana:3000' }),
      startAdminGateway(routes, { tempoUrl: await closedPortUrl(), tempoTimeoutMs: 2000 }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([gateway?.stop(), unreachable?.stop()]);
    await Promise.all([tempo?.close(), upstream?.close()]);
  });

  it('logs Tempo as the lookup source at start-up', () => {
    expect(gateway.logs.find((l) => l.trace_lookup === 'enabled')!.lookup_source).toBe(`tempo ${tempo.url}`);
  });

  it('summarises the whole trace from Tempo: every service, the tree, and the root cause', async () => {
    const res = await adminGet(gateway, `/admin/traces/${TRACE_ID.toUpperCase()}`);
    expect(res.status).toBe(200);
    expect(tempo.requests).toContain(`/tempo/api/v2/traces/${TRACE_ID}`);
    const s = res.json<Record<string, any>>();
    expect(s).toMatchObject({
      traceId: TRACE_ID,
      source: 'tempo',
      requestId: 'req-7f3a9c',
      root: { service: 'tracing-gateway', name: 'GET /api/users/*', method: 'GET', route: '/api/users/*', path: '/api/users/42', status: 500, ok: false, durationMs: 48.2 },
      durationMs: 48.2,
      spanCount: 5,
      errorCount: 4,
      services: ['tracing-gateway', 'users-service'],
      upstreams: ['users'],
      cause: { spanId: 'a1b2c3d4e5f60718', service: 'users-service', name: 'SELECT users', kind: 'CLIENT', message: 'canceling statement due to statement timeout' },
    });
    expect(s.root.startTime).toBe('2026-11-23T00:00:00.123Z');
    const rows = (s.spans as Array<Record<string, any>>).map((sp) => [sp.service, sp.name, sp.kind, sp.depth, sp.startOffsetMs, sp.durationMs, sp.status]);
    expect(rows).toEqual([
      ['tracing-gateway', 'GET /api/users/*', 'SERVER', 0, 0, 48.2, 'ERROR'],
      ['tracing-gateway', 'GET', 'CLIENT', 1, 1.1, 46.4, 'ERROR'],
      ['users-service', 'GET /{id}', 'SERVER', 2, 2, 44.9, 'ERROR'],
      ['users-service', 'check session', 'INTERNAL', 3, 2.2, 0.7, 'UNSET'],
      ['users-service', 'SELECT users', 'CLIENT', 3, 3, 42, 'ERROR'],
    ]);
    const db = s.spans[4];
    // Key attributes only: the database system, not the statement text.
    expect(db.attributes).toMatchObject({ 'db.system': 'postgresql', 'db.operation': 'SELECT', 'server.address': 'db.internal' });
    expect(db.attributes['db.statement']).toBeUndefined();
    expect(s.spans[2].error).toBe('answered 500');
    expect(decodeURIComponent(s.grafanaUrl)).toContain(`"query":"${TRACE_ID}"`);
  });

  it('resolves a request ID through Tempo search ({ span.gateway.request_id = "…" } over a time window)', async () => {
    const res = await adminGet(gateway, '/admin/requests/req-7f3a9c');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ traceId: TRACE_ID, requestId: 'req-7f3a9c', source: 'tempo' });
    const search = new URL(`http://x${tempo.requests.find((r) => r.startsWith('/tempo/api/search'))!}`);
    expect(search.searchParams.get('q')).toBe('{ span.gateway.request_id = "req-7f3a9c" }');
    const start = Number(search.searchParams.get('start'));
    const end = Number(search.searchParams.get('end'));
    expect(end - start).toBe(24 * 3600);
    expect(Math.abs(end - Date.now() / 1000)).toBeLessThan(60);
  });

  it('404 when Tempo does not have the trace (a 404, or a 200 without spans), with Tempo-specific reasons', async () => {
    for (const id of ['4bf92f3577b34da6a3ce929d0e0e4736', EMPTY_ID]) {
      const res = await adminGet(gateway, `/admin/traces/${id}`);
      expect(res.status, id).toBe(404);
      const body = res.json<{ error: string; message: string; reasons: string[] }>();
      expect(body.error).toBe('trace_not_found');
      expect(body.message).toContain('Tempo has no trace');
      expect(body.reasons.join(' ')).toMatch(/few seconds.*not sampled.*retention/s);
    }
  });

  it('404 for a request ID Tempo search does not find, mentioning the 30 s search cutoff', async () => {
    const res = await adminGet(gateway, '/admin/requests/nobody-sent-this');
    expect(res.status).toBe(404);
    expect(res.json<{ reasons: string[] }>().reasons[0]).toMatch(/last 30 seconds and looks back 24 hours/);
  });

  it('502 when Tempo fails or answers garbage, passing on what Tempo said', async () => {
    const failing = await adminGet(gateway, `/admin/traces/${FAILING_ID}`);
    expect(failing.status).toBe(502);
    expect(failing.json()).toEqual({ error: 'tempo_error', message: expect.stringContaining('Tempo answered 500: rpc error: code = Unavailable desc = no queriers') });
    const garbage = await adminGet(gateway, `/admin/traces/${GARBAGE_ID}`);
    expect(garbage.status).toBe(502);
    expect(garbage.json()).toMatchObject({ error: 'tempo_bad_response' });
  });

  it('502 saying Tempo is unreachable when nothing answers at tempoUrl', async () => {
    const res = await adminGet(unreachable, `/admin/traces/${TRACE_ID}`);
    expect(res.status).toBe(502);
    expect(res.json()).toEqual({ error: 'tempo_unreachable', message: expect.stringMatching(/^Tempo at http:\/\/127\.0\.0\.1:\d+ could not be reached \(ECONNREFUSED\)/) });
    const byRequest = await adminGet(unreachable, '/admin/requests/some-request');
    expect(byRequest.status).toBe(502);
  });

  it('a request this gateway just handled resolves from its own index and, until Tempo has it, shows the gateway spans', async () => {
    const before = tempo.requests.length;
    const { traceId } = await tracedRequest(gateway, '/api/users/3', { 'x-request-id': 'just-now-1' });
    const res = await adminGet(gateway, '/admin/requests/just-now-1');
    expect(res.status).toBe(200);
    const s = res.json<{ traceId: string; source: string; notes: string[]; spans: Array<{ kind: string }> }>();
    expect(s).toMatchObject({ traceId, source: 'gateway' });
    expect(s.spans.map((sp) => sp.kind)).toEqual(['SERVER', 'CLIENT']);
    expect(s.notes.join(' ')).toContain('Tempo does not have this trace (yet)');
    const asked = tempo.requests.slice(before);
    expect(asked).toEqual([`/tempo/api/v2/traces/${traceId}`]);
  });
});
