import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { parseExposition } from '../helpers/exposition.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { rawRequest } from '../helpers/raw.js';
import { rawHeaderValues, startUpstream, type TestUpstream } from '../helpers/upstream.js';

let upstream: TestUpstream;
let receiver: OtlpReceiver;
let gateway: RunningGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  receiver = await startOtlpReceiver();
  gateway = await startGateway(
    {
      server: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, maxHeaderCount: 50 },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { name: 'public', prefix: '/public', upstream: 'app', stripPrefix: true, maxBodyBytes: 1024 },
        { name: 'admin', prefix: '/internal', upstream: 'app' },
      ],
    },
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
  );
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
  await receiver?.close();
});

const reached = (id: string) => upstream.requests.filter((r) => r.headers['x-request-id'] === id);

describe('limits answer with the right status', () => {
  it('431 for too many header lines, with the JSON error and trace ID', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => `X-Filler-${i}: v`);
    const res = await rawRequest(gateway.port, '/public/x', ['X-Request-ID: many-headers', ...lines]);
    expect(res.status).toBe(431);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'too_many_headers', traceId: res.headers['x-trace-id'] });
    expect(reached('many-headers')).toHaveLength(0);
  });

  it('431 for headers larger than the limit', async () => {
    const res = await rawRequest(gateway.port, '/public/x', [`X-Big: ${'a'.repeat(20_000)}`]);
    expect(res.status).toBe(431);
  });

  it('413 for a declared body over the route limit, before anything goes upstream', async () => {
    const res = await send(`${gateway.url}/public/upload`, { method: 'POST', headers: { 'x-request-id': 'big-cl' }, body: Buffer.alloc(2048) });
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ error: 'payload_too_large' });
    expect(reached('big-cl')).toHaveLength(0);
  });

  it('413 for a chunked body that grows over the limit', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${gateway.url}/public/upload`, { method: 'POST', headers: { 'x-request-id': 'big-chunked', 'transfer-encoding': 'chunked' } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write(Buffer.alloc(512));
      req.end();
    });
    expect(res).toBe(413);
  });

  it('400 for request smuggling shapes: Content-Length with Transfer-Encoding, duplicate Content-Length', async () => {
    const both = await rawRequest(gateway.port, '/public/x', ['X-Request-ID: smuggle-1', 'Content-Length: 5', 'Transfer-Encoding: chunked'], 'POST');
    expect(both.status).toBe(400);
    const dup = await rawRequest(gateway.port, '/public/x', ['X-Request-ID: smuggle-2', 'Content-Length: 5', 'Content-Length: 6'], 'POST');
    expect(dup.status).toBe(400);
    expect(reached('smuggle-1')).toHaveLength(0);
    expect(reached('smuggle-2')).toHaveLength(0);
  });
});

describe('path normalisation happens before route matching', () => {
  const cases: Array<[string, number, string | null]> = [
    ['/public/../internal/secret', 200, '/internal/secret'], // normalised first, then routed as /internal
    ['/public/%2e%2e/internal/secret', 200, '/internal/secret'],
    ['/public/%2E%2e/%2e%2e/etc/passwd', 404, null],
    ['/public/a/../b', 200, '/b'],
    ['/public//double//slash', 200, '/double/slash'],
    ['/public/./x', 200, '/x'],
    ['/public/..%2finternal/secret', 400, null],
    ['/public/a%5c..%5cb', 400, null],
  ];
  it.each(cases)('%s → %d upstream %s', async (path, status, upstreamPath) => {
    const id = `path-${Math.random().toString(36).slice(2)}`;
    const res = await rawRequest(gateway.port, path, [`X-Request-ID: ${id}`]);
    expect(res.status).toBe(status);
    const seen = reached(id);
    if (upstreamPath === null) expect(seen).toHaveLength(0);
    else expect(seen.map((r) => r.url)).toEqual([upstreamPath]);
    if (status >= 400) expect(JSON.parse(res.body).traceId).toBe(res.headers['x-trace-id']);
  });
});

describe('slow clients', () => {
  it('a slowloris client that never finishes its headers is disconnected after the header timeout', async () => {
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const socket = connect(gateway.port, '127.0.0.1');
      let timer: NodeJS.Timeout;
      socket.on('connect', () => {
        socket.write('GET /public/x HTTP/1.1\r\nHost: x\r\n');
        timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
      });
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(timer);
        resolve(Date.now() - started);
      });
      setTimeout(() => socket.destroy(), 8000);
    });
    expect(closedAfter).toBeLessThan(4000);
  });
});

describe('property: hostile trace and ID headers', () => {
  const junk = fc.string({ maxLength: 300 }).filter((s) => !/[\r\n\0]/.test(s) && /^[\t\x20-\x7e]*$/.test(s));
  const headerCase = fc.record({
    traceparent: fc.option(fc.oneof(junk, fc.constant('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')), { nil: undefined }),
    tracestate: fc.option(junk, { nil: undefined }),
    baggage: fc.option(fc.oneof(junk, fc.array(fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), junk), { maxLength: 80 }).map((kv) => kv.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join(','))), { nil: undefined }),
    requestId: fc.option(junk, { nil: undefined }),
    forwardedFor: fc.option(junk, { nil: undefined }),
  });

  it('never a 5xx, never an error log, and only bounded, well-formed values downstream', async () => {
    const metricsBefore = (await send(`${gateway.url}/metrics`)).body.split('\n').filter((l) => l.startsWith('http_server_request_duration_seconds_count')).length;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(headerCase, async (h) => {
        const marker = `prop-${++n}`;
        const lines = [`X-Marker: ${marker}`];
        if (h.traceparent !== undefined) lines.push(`traceparent: ${h.traceparent}`);
        if (h.tracestate !== undefined) lines.push(`tracestate: ${h.tracestate}`);
        if (h.baggage !== undefined) lines.push(`baggage: ${h.baggage}`);
        if (h.requestId !== undefined) lines.push(`X-Request-ID: ${h.requestId}`);
        if (h.forwardedFor !== undefined) lines.push(`X-Forwarded-For: ${h.forwardedFor}`);
        const res = await rawRequest(gateway.port, '/public/p', lines);
        expect(res.status).toBe(200);
        expect(res.headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
        const up = upstream.requests.find((r) => r.headers['x-marker'] === marker)!;
        expect(rawHeaderValues(up, 'traceparent')).toHaveLength(1);
        expect(rawHeaderValues(up, 'traceparent')[0]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$/);
        expect(rawHeaderValues(up, 'x-request-id')).toEqual([res.headers['x-request-id']]);
        for (const b of rawHeaderValues(up, 'baggage')) expect(b.length).toBeLessThanOrEqual(8192);
        const xff = rawHeaderValues(up, 'x-forwarded-for');
        expect(xff).toHaveLength(1);
        expect(xff[0]).toMatch(/^[0-9A-Fa-f:.[\], ]{1,1100}$/);
        expect(xff[0]!.endsWith('127.0.0.1')).toBe(true);
      }),
      { numRuns: 120 },
    );
    // Log lines: all JSON (the helper parses every line), none at error level, none huge.
    await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id !== undefined && gateway.logs.filter((x) => x.msg === 'request completed').length >= n);
    expect(gateway.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    for (const line of gateway.logs) expect(JSON.stringify(line).length).toBeLessThan(4096);
    // Metric labels did not take any client-supplied value.
    const after = (await send(`${gateway.url}/metrics`)).body;
    parseExposition(after);
    const series = after.split('\n').filter((l) => l.startsWith('http_server_request_duration_seconds_count')).length;
    expect(series - metricsBefore).toBeLessThanOrEqual(1);
    // Span attributes stay bounded.
    await new Promise((r) => setTimeout(r, 500));
    for (const span of receiver.spans) for (const v of Object.values(span.attributes)) if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(2048);
  });
});
