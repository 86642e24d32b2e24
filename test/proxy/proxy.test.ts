import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { rawHeaderValues, startUpstream, type TestUpstream } from '../helpers/upstream.js';

let upstream: TestUpstream;
let slow: TestUpstream;
let receiver: OtlpReceiver;
let gateway: RunningGateway;
let refusedPort: number;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

beforeAll(async () => {
  upstream = await startUpstream((req, res, record) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname.endsWith('/hop')) {
      res.writeHead(200, { connection: 'x-private, keep-alive', 'x-private': 'secret', 'keep-alive': 'timeout=5', 'x-end-to-end': 'yes', 'set-cookie': ['a=1', 'b=2'] });
      res.end('ok');
      return;
    }
    if (url.pathname.endsWith('/status/503')) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream busy');
      return;
    }
    if (url.pathname.endsWith('/reset-mid-body')) {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 97));
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    req.on('data', (c: Buffer) => (record.bodyBytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, bodyBytes: record.bodyBytes });
      res.writeHead(201, { 'content-type': 'application/json', 'x-upstream': 'yes', 'x-trace-id': 'f'.repeat(32) });
      res.end(body);
    });
  });
  slow = await startUpstream((_req, res) => {
    setTimeout(() => {
      if (!res.destroyed) res.end('late');
    }, 3000);
  });
  receiver = await startOtlpReceiver();
  refusedPort = await freePort();
  gateway = await startGateway(
    {
      upstreams: {
        main: { url: upstream.url },
        based: { url: `${upstream.url}/base/` },
        slow: { url: slow.url },
        refused: { url: `http://127.0.0.1:${refusedPort}` },
      },
      routes: [
        { name: 'main', prefix: '/main', upstream: 'main' },
        { name: 'stripped', prefix: '/strip', upstream: 'based', stripPrefix: true },
        { name: 'readonly', prefix: '/ro', upstream: 'main', methods: ['GET', 'HEAD'] },
        { name: 'slow', prefix: '/slow', upstream: 'slow', timeoutMs: 300 },
        { name: 'refused', prefix: '/refused', upstream: 'refused' },
      ],
    },
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
  );
});

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([upstream?.close(), slow?.close(), receiver?.close()]);
});

function recordedFor(requestId: unknown, up = upstream) {
  return up.requests.find((r) => r.headers['x-request-id'] === requestId)!;
}

describe('forwarding', () => {
  it('preserves method, path, query, status, end-to-end headers and body', async () => {
    const res = await send(`${gateway.url}/main/a/b%20c?x=1&y=%2F`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custom': 'kept' },
      body: '{"hello":"world"}',
    });
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ method: 'POST', url: '/main/a/b%20c?x=1&y=%2F', bodyBytes: 17 });
    expect(res.headers['x-upstream']).toBe('yes');
    // The gateway's own X-Trace-ID wins over one an upstream sets.
    expect(res.headers['x-trace-id']).not.toBe('f'.repeat(32));
    const rec = recordedFor(res.headers['x-request-id']);
    expect(rec.headers['x-custom']).toBe('kept');
    expect(rec.headers['content-type']).toBe('application/json');
  });

  it('strips the prefix and joins the upstream base path when configured', async () => {
    const res = await send(`${gateway.url}/strip/items?q=1`);
    expect(recordedFor(res.headers['x-request-id']).url).toBe('/base/items?q=1');
    const root = await send(`${gateway.url}/strip?q=2`);
    expect(recordedFor(root.headers['x-request-id']).url).toBe('/base/?q=2');
    // A prefix matches whole path segments only.
    expect((await send(`${gateway.url}/stripped-not`)).status).toBe(404);
  });

  it('drops hop-by-hop headers both ways and sets X-Forwarded-*', async () => {
    const res = await send(`${gateway.url}/main/hop`, {
      headers: {
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic abc',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
        host: 'public.example:8443',
      },
    });
    const rec = recordedFor(res.headers['x-request-id']);
    const names = rec.rawHeaders.map(([k]) => k.toLowerCase());
    for (const hop of ['x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'upgrade', 'trailer']) expect(names).not.toContain(hop);
    expect(rec.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(rec.headers['x-forwarded-proto']).toBe('http');
    expect(rec.headers['x-forwarded-host']).toBe('public.example:8443');
    expect(rec.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(rawHeaderValues(rec, 'x-request-id')).toEqual([res.headers['x-request-id']]);
    // Response side: the upstream's Connection-listed and keep-alive fields stay behind.
    expect(res.headers['x-private']).toBeUndefined();
    expect(res.headers['x-end-to-end']).toBe('yes');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('passes an upstream 5xx through and marks both spans as errors', async () => {
    const res = await send(`${gateway.url}/main/status/503`);
    expect(res.status).toBe(503);
    expect(res.body).toBe('upstream busy');
    const traceId = res.headers['x-trace-id'] as string;
    await receiver.waitFor((s) => s.filter((x) => x.traceId === traceId).length === 2);
    const spans = receiver.spans.filter((x) => x.traceId === traceId);
    for (const span of spans) {
      expect(span.status.code).toBe(2);
      expect(span.attributes['http.response.status_code']).toBe(503);
    }
  });
});

describe('errors the gateway answers itself', () => {
  async function expectJsonError(res: Awaited<ReturnType<typeof send>>, status: number, error: string) {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toContain('application/json');
    const body = res.json();
    expect(body).toEqual({ error, message: expect.any(String), traceId: res.headers['x-trace-id'], requestId: res.headers['x-request-id'] });
    expect(body.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(body.message).not.toMatch(/\n\s+at /);
    return body;
  }

  it('404 for an unmatched path', async () => {
    await expectJsonError(await send(`${gateway.url}/nowhere/x`), 404, 'not_found');
  });

  it('405 with Allow for a method the route does not allow', async () => {
    const res = await send(`${gateway.url}/ro/x`, { method: 'DELETE' });
    await expectJsonError(res, 405, 'method_not_allowed');
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it('502 when the upstream refuses the connection, with an ERROR span and exception event', async () => {
    const res = await send(`${gateway.url}/refused/x`);
    await expectJsonError(res, 502, 'upstream_unreachable');
    const traceId = res.headers['x-trace-id'] as string;
    await receiver.waitFor((s) => s.filter((x) => x.traceId === traceId).length === 2);
    const spans = receiver.spans.filter((x) => x.traceId === traceId);
    const client = spans.find((s) => s.kind === 'CLIENT')!;
    const server = spans.find((s) => s.kind === 'SERVER')!;
    expect(client.status.code).toBe(2);
    expect(client.attributes['error.type']).toBe('connect');
    expect(client.events.map((e) => e.name)).toContain('exception');
    expect(server.status.code).toBe(2);
    expect(server.attributes['http.response.status_code']).toBe(502);
    expect(server.events.map((e) => e.name)).toContain('exception');
  });

  it('504 when the upstream does not answer within the route timeout, and no later', async () => {
    const started = Date.now();
    const res = await send(`${gateway.url}/slow/x`);
    const elapsed = Date.now() - started;
    await expectJsonError(res, 504, 'upstream_timeout');
    expect(elapsed).toBeLessThan(2500);
  });

  it('cuts the client connection when the upstream resets mid-body (status already sent)', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest(`${gateway.url}/main/reset-mid-body`, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', () => {});
        res.on('end', () => resolve('ended'));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(outcome).not.toBe('ended');
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.path === '/main/reset-mid-body');
    expect(line.error_type).toBe('reset');
  });

  it('aborts the upstream request when the client goes away', async () => {
    const before = slow.requests.length;
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${gateway.url}/slow/abandon`, { headers: { 'x-request-id': 'abandon-1' } });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    const deadline = Date.now() + 2000;
    while (!(slow.requests.length > before && slow.requests.at(-1)!.aborted) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(slow.requests.at(-1)!.headers['x-request-id']).toBe('abandon-1');
    expect(slow.requests.at(-1)!.aborted).toBe(true);
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id === 'abandon-1');
    expect(line.status).toBe(499);
  });
});

describe('request IDs', () => {
  const cases: Array<[string, string, boolean]> = [
    ['simple', 'abc-123', true],
    ['all allowed characters', 'A.z_0:9-x', true],
    ['128 characters', 'a'.repeat(128), true],
    ['129 characters', 'a'.repeat(129), false],
    ['space', 'abc def', false],
    ['log injection attempt', 'abc"\\n{"level":"fatal"}', false],
    ['non-ASCII', 'caf\u00e9', false],
    ['slash', 'a/b', false],
  ];
  it.each(cases)('X-Request-ID %s → echoed: %s', async (_name, value, kept) => {
    const res = await send(`${gateway.url}/main/rid`, { headers: { 'x-request-id': Buffer.from(value, 'latin1').toString('latin1') } });
    expect(res.status).toBe(201);
    const id = res.headers['x-request-id'] as string;
    if (kept) expect(id).toBe(value);
    else {
      expect(id).not.toBe(value);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(recordedFor(id).headers['x-request-id']).toBe(id);
  });
});
