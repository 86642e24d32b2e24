import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { adminGet, startAdminGateway, TOKEN, tracedRequest, type AdminGateway } from './helpers.js';

interface Summary {
  traceId: string;
  source: string;
  requestId?: string;
  root: { service: string; name: string; method?: string; route?: string; path?: string; status?: number; ok: boolean; durationMs: number; startTime: string };
  durationMs: number;
  spanCount: number;
  errorCount: number;
  services: string[];
  upstreams: string[];
  cause?: { spanId: string; service: string; name: string; kind: string; message: string };
  spans: Array<{ spanId: string; parentSpanId: string | null; depth: number; service: string; name: string; kind: string; startOffsetMs: number; durationMs: number; status: string; httpStatus?: number; error?: string; attributes: Record<string, unknown> }>;
  grafanaUrl?: string;
  otherTraceIds?: string[];
}

let upstream: TestUpstream;
let gateway: AdminGateway;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    // A little latency so the CLIENT span has a visible duration inside the SERVER span.
    setTimeout(() => {
      const status = req.url?.startsWith('/status/') ? Number(req.url.slice(8)) : 200;
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    }, 15);
  });
  gateway = await startAdminGateway(
    [
      { name: 'users', prefix: '/api/users', url: upstream.url, stripPrefix: true },
      { name: 'dead', prefix: '/dead', url: 'http://127.0.0.1:1' },
    ],
    { grafanaUrl: 'https://grafana.example.com/sub/', grafanaTempoDatasourceUid: 'tempo-prod' },
  );
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

describe('admin listener', () => {
  it('listens on its own port, separate from the proxy, and the proxy port has no admin API', async () => {
    expect(new URL(gateway.adminUrl).port).not.toBe(String(gateway.port));
    const onProxy = await send(`${gateway.url}/admin/traces/4bf92f3577b34da6a3ce929d0e0e4736`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(onProxy.status).toBe(404);
    expect(onProxy.body).not.toContain('traceId":"4bf9');
  });

  it('answers 401 without a token and with a wrong one, as JSON, and logs neither the token nor a stack', async () => {
    const none = await adminGet(gateway, '/admin/traces/4bf92f3577b34da6a3ce929d0e0e4736', null);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(none.json()).toEqual({ error: 'unauthorized', message: expect.stringContaining('Authorization: Bearer') });
    const wrong = await adminGet(gateway, '/admin/requests/abc', `${TOKEN}x`);
    expect(wrong.status).toBe(401);
    const short = await adminGet(gateway, '/admin/lookup/abc', 'x');
    expect(short.status).toBe(401);
    const basic = await send(`${gateway.adminUrl}/admin/lookup/abc`, { headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    await gateway.waitForLog((l) => l.msg === 'admin request rejected: missing or wrong token');
    expect(JSON.stringify(gateway.logs)).not.toContain(TOKEN);
    expect(none.body + wrong.body).not.toMatch(/at .*\.js:\d+/);
  });

  it('serves the page without the token, with a strict CSP, and the page holds no secrets', async () => {
    const page = await send(`${gateway.adminUrl}/admin/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.body).toContain('<form id="lookup"');
    expect(page.body).not.toContain(TOKEN);
    const script = await send(`${gateway.adminUrl}/admin/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.body).not.toContain('innerHTML');
    const redirect = await send(`${gateway.adminUrl}/admin`);
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe('/admin/');
    const unknown = await send(`${gateway.adminUrl}/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.json().error).toBe('not_found');
  });
});

describe('GET /admin/traces/:traceId from the embedded store', () => {
  it('400 for a malformed trace ID, saying what a trace ID looks like', async () => {
    for (const bad of ['xyz', '4bf92f3577b34da6a3ce929d0e0e473', '00000000000000000000000000000000', 'g'.repeat(32)]) {
      const res = await adminGet(gateway, `/admin/traces/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_trace_id', message: expect.stringContaining('32 hexadecimal characters') });
    }
  });

  it('404 for an unknown trace, with the likely reasons', async () => {
    const res = await adminGet(gateway, '/admin/traces/4bf92f3577b34da6a3ce929d0e0e4736');
    expect(res.status).toBe(404);
    const body = res.json<{ error: string; message: string; reasons: string[] }>();
    expect(body.error).toBe('trace_not_found');
    const reasons = body.reasons.join('\n');
    expect(reasons).toMatch(/not sampled/);
    expect(reasons).toMatch(/older than what this gateway keeps.*evicted/);
    expect(reasons).toMatch(/never reached the gateway/);
  });

  it('200 with the summary of a real request: root request, services, SERVER → CLIENT tree, Grafana link', async () => {
    const { res, traceId, requestId } = await tracedRequest(gateway, '/api/users/42?token=secret', { 'user-agent': 'support-test/1' });
    expect(res.status).toBe(200);
    const lookup = await adminGet(gateway, `/admin/traces/${traceId}`);
    expect(lookup.status).toBe(200);
    expect(lookup.headers['cache-control']).toBe('no-store');
    const s = lookup.json<Summary>();
    expect(s.traceId).toBe(traceId);
    expect(s.source).toBe('gateway');
    expect(s.requestId).toBe(requestId);
    expect(s.root).toMatchObject({ service: 'tracing-gateway', name: 'GET /api/users/*', method: 'GET', route: '/api/users/*', path: '/api/users/42', status: 200, ok: true });
    expect(Date.parse(s.root.startTime)).toBeGreaterThan(Date.now() - 60_000);
    expect(s.services).toEqual(['tracing-gateway']);
    expect(s.upstreams).toEqual(['users']);
    expect(s.spanCount).toBe(2);
    expect(s.errorCount).toBe(0);
    expect(s.cause).toBeUndefined();

    const [server, client] = s.spans;
    expect(server).toMatchObject({ kind: 'SERVER', depth: 0, parentSpanId: null, startOffsetMs: 0, httpStatus: 200, service: 'tracing-gateway' });
    expect(client).toMatchObject({ kind: 'CLIENT', depth: 1, parentSpanId: server!.spanId, httpStatus: 200, name: 'GET' });
    expect(res.headers.traceresponse).toContain(server!.spanId);
    // The upstream answered after ~15 ms: the CLIENT span sits inside the SERVER span. The SDK
    // stamps each span's start with Date.now() (whole milliseconds) and measures its duration
    // precisely, so the ends of two spans compare only to within 1 ms.
    expect(client!.durationMs).toBeGreaterThanOrEqual(14);
    expect(client!.startOffsetMs).toBeGreaterThanOrEqual(0);
    expect(client!.startOffsetMs + client!.durationMs).toBeLessThanOrEqual(server!.durationMs + 1);
    expect(server!.attributes).toMatchObject({ 'gateway.request_id': requestId, 'http.route': '/api/users/*', 'url.query': 'token=REDACTED', 'user_agent.original': 'support-test/1' });
    expect(client!.attributes['url.full']).toContain('/42');

    // Grafana Explore link: panes JSON with the datasource uid as a string, a range around the trace.
    const link = new URL(s.grafanaUrl!);
    expect(`${link.origin}${link.pathname}`).toBe('https://grafana.example.com/sub/explore');
    const panes = JSON.parse(link.searchParams.get('panes')!) as Record<string, { datasource: unknown; queries: Array<{ query: string; datasource: { uid: string } }>; range: { from: string; to: string } }>;
    const pane = Object.values(panes)[0]!;
    expect(pane.datasource).toBe('tempo-prod');
    expect(pane.queries[0]).toMatchObject({ query: traceId, queryType: 'traceql', datasource: { type: 'tempo', uid: 'tempo-prod' } });
    expect(Number(pane.range.from)).toBeLessThan(Date.parse(s.root.startTime));
    expect(Number(pane.range.to)).toBeGreaterThan(Date.parse(s.root.startTime));
  });

  it('forgives upper case, surrounding whitespace and a pasted traceparent', async () => {
    const { traceId, res } = await tracedRequest(gateway, '/api/users/7');
    for (const form of [traceId.toUpperCase(), `%20${traceId}%20`, encodeURIComponent(res.headers.traceresponse as string)]) {
      const lookup = await adminGet(gateway, `/admin/traces/${form}`);
      expect(lookup.status, form).toBe(200);
      expect(lookup.json<Summary>().traceId).toBe(traceId);
    }
  });

  it('names the failing span and its error when the upstream cannot be reached', async () => {
    const { res, traceId } = await tracedRequest(gateway, '/dead/x');
    expect(res.status).toBe(502);
    const s = (await adminGet(gateway, `/admin/traces/${traceId}`)).json<Summary>();
    expect(s.root).toMatchObject({ status: 502, ok: false });
    expect(s.errorCount).toBe(2);
    const client = s.spans.find((sp) => sp.kind === 'CLIENT')!;
    expect(client.status).toBe('ERROR');
    expect(client.error).toMatch(/ECONNREFUSED/);
    expect(s.cause).toMatchObject({ spanId: client.spanId, kind: 'CLIENT', message: expect.stringMatching(/ECONNREFUSED/) });
    expect(s.spans.find((sp) => sp.kind === 'SERVER')!.error).toMatch(/refused|502/);
  });

  it('finds nothing for an unsampled request: it has an X-Trace-ID but records no spans', async () => {
    const traceparent = '00-11112222333344445555666677778888-1111222233334444-00';
    const { traceId } = await tracedRequest(gateway, '/api/users/1', { traceparent });
    expect(traceId).toBe('11112222333344445555666677778888');
    const res = await adminGet(gateway, `/admin/traces/${traceId}`);
    expect(res.status).toBe(404);
    expect(res.json<{ reasons: string[] }>().reasons[0]).toMatch(/not sampled/);
  });
});

describe('GET /admin/requests/:requestId and /admin/lookup/:id', () => {
  it('resolves a request ID to its trace and answers the same summary, with Content-Location', async () => {
    const { traceId } = await tracedRequest(gateway, '/api/users/5', { 'x-request-id': 'ticket-4711.a' });
    const res = await adminGet(gateway, '/admin/requests/ticket-4711.a');
    expect(res.status).toBe(200);
    expect(res.headers['content-location']).toBe(`/admin/traces/${traceId}`);
    const s = res.json<Summary>();
    expect(s.traceId).toBe(traceId);
    expect(s.requestId).toBe('ticket-4711.a');
    expect(s.spans.map((sp) => sp.kind)).toEqual(['SERVER', 'CLIENT']);
  });

  it('lists the other traces when a caller reused a request ID, newest first', async () => {
    const first = await tracedRequest(gateway, '/api/users/1', { 'x-request-id': 'reused-id' });
    const second = await tracedRequest(gateway, '/api/users/2', { 'x-request-id': 'reused-id' });
    const s = (await adminGet(gateway, '/admin/requests/reused-id')).json<Summary>();
    expect(s.traceId).toBe(second.traceId);
    expect(s.otherTraceIds).toEqual([first.traceId]);
  });

  it('404 for an unknown request ID, 400 for something that cannot be a request ID', async () => {
    const unknown = await adminGet(gateway, '/admin/requests/never-seen-1');
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ error: 'request_not_found', reasons: expect.arrayContaining([expect.stringMatching(/X-Request-ID/)]) });
    const bad = await adminGet(gateway, `/admin/requests/${encodeURIComponent('a b<c>')}`);
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_id', message: expect.stringContaining('32 hexadecimal') });
  });

  it('/admin/lookup/:id takes either kind, including a 32-hex request ID', async () => {
    const byTrace = await tracedRequest(gateway, '/api/users/9');
    expect((await adminGet(gateway, `/admin/lookup/${byTrace.traceId}`)).json<Summary>().traceId).toBe(byTrace.traceId);
    expect((await adminGet(gateway, `/admin/lookup/${byTrace.requestId}`)).json<Summary>().traceId).toBe(byTrace.traceId);
    const hexRequestId = 'abcdefabcdefabcdefabcdefabcdef12';
    const byHexRequest = await tracedRequest(gateway, '/api/users/10', { 'x-request-id': hexRequestId });
    const s = (await adminGet(gateway, `/admin/lookup/${hexRequestId}`)).json<Summary>();
    expect(s.traceId).toBe(byHexRequest.traceId);
  });

  it('writes one audit line per lookup, without the token', async () => {
    await adminGet(gateway, '/admin/requests/audit-me');
    const line = await gateway.waitForLog((l) => l.msg === 'admin trace lookup' && l.lookup_id === 'audit-me');
    expect(line).toMatchObject({ lookup_kind: 'request', status: 404 });
    expect(JSON.stringify(gateway.logs)).not.toContain(TOKEN);
  });
});

describe('lookup disabled, and /metrics + /health on the admin listener', () => {
  let noToken: AdminGateway;
  let shortToken: AdminGateway;
  let noAdmin: RunningGateway;

  beforeAll(async () => {
    [noToken, shortToken, noAdmin] = await Promise.all([
      startAdminGateway([{ name: 'users', prefix: '/api', url: upstream.url }], { metricsAndHealth: true }, {}),
      startAdminGateway([{ name: 'users', prefix: '/api', url: upstream.url }], {}, { GATEWAY_ADMIN_TOKEN: 'short' }),
      startGateway(configFor([{ name: 'users', prefix: '/api', url: upstream.url }]), { GATEWAY_ADMIN_TOKEN: TOKEN }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([noToken?.stop(), shortToken?.stop(), noAdmin?.stop()]);
  });

  it('without a token: one clear start-up line, and 503 lookup_disabled even with a token', async () => {
    const lines = noToken.logs.filter((l) => String(l.msg).includes('trace lookup'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', trace_lookup: 'disabled', msg: expect.stringContaining('no admin token is configured') });
    const res = await adminGet(noToken, '/admin/traces/4bf92f3577b34da6a3ce929d0e0e4736');
    expect(res.status).toBe(503);
    expect(res.json()).toEqual({ error: 'lookup_disabled', message: expect.stringContaining('disabled') });
    const alsoWithoutHeader = await adminGet(noToken, '/admin/requests/x', null);
    expect(alsoWithoutHeader.status).toBe(503);
  });

  it('a GATEWAY_ADMIN_TOKEN shorter than 16 characters disables the lookup rather than accepting it', async () => {
    const line = shortToken.logs.find((l) => l.trace_lookup === 'disabled')!;
    expect(line.msg).toContain('shorter than 16 characters');
    expect(JSON.stringify(shortToken.logs)).not.toContain('"short"');
    expect((await adminGet(shortToken, '/admin/lookup/abc', 'short')).status).toBe(503);
  });

  it('without an admin block there is no admin listener, and the log says so', async () => {
    const line = noAdmin.logs.find((l) => String(l.msg).startsWith('admin listener off'))!;
    expect(line.msg).toContain('GATEWAY_ADMIN_TOKEN is set but the config has no "admin" block');
    const metrics = await send(`${noAdmin.url}/metrics`);
    // The store is switched off, so it holds nothing.
    expect(metrics.body).toMatch(/^gateway_trace_store_spans 0$/m);
  });

  it('metricsAndHealth serves /metrics and /health* on the admin listener too', async () => {
    const metrics = await send(`${noToken.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('# TYPE gateway_trace_store_spans gauge');
    expect((await send(`${noToken.adminUrl}/health/live`)).status).toBe(200);
    expect((await send(`${gateway.adminUrl}/metrics`)).status).toBe(404);
  });
});

describe('/metrics and /health only on the admin listener', () => {
  it('listen.metricsAndHealth: false takes them off the proxy port; the admin listener serves them', async () => {
    const gw = await startGateway(
      configFor([{ name: 'users', prefix: '/api', url: upstream.url }], { listen: { metricsAndHealth: false }, admin: { port: 0, metricsAndHealth: true } }),
      { GATEWAY_ADMIN_TOKEN: TOKEN },
    );
    try {
      const line = await gw.waitForLog((l) => l.msg.startsWith('admin listening'));
      const adminUrl = `http://${String(line.address)}`;
      for (const path of ['/metrics', '/health', '/health/ready']) {
        expect((await send(`${gw.url}${path}`)).status, path).toBe(404);
        expect((await send(`${adminUrl}${path}`)).status, path).not.toBe(404);
      }
      // Proxying is unaffected.
      expect((await send(`${gw.url}/api/x`)).status).toBe(200);
    } finally {
      await gw.stop();
    }
  });
});
