import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { rawHeaderValues, startUpstream, type TestUpstream } from '../helpers/upstream.js';

let upstream: TestUpstream;
let gateway: RunningGateway;

beforeAll(async () => {
  // Slow enough that hundreds of requests overlap inside the gateway.
  upstream = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        const body = JSON.stringify({ traceparent: req.headers.traceparent, rid: req.headers['x-request-id'] });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, 50 + Math.random() * 150),
    );
  });
  gateway = await startGateway(configFor([{ name: 'svc', prefix: '/svc', url: upstream.url }]), { LOG_LEVEL: 'debug' });
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

describe('access log', () => {
  it('writes one line per request with the documented fields and never the credentials', async () => {
    const res = await send(`${gateway.url}/svc/orders?id=7`, {
      method: 'POST',
      headers: { authorization: 'Bearer top-secret-token', cookie: 'session=top-secret-cookie', 'x-request-id': 'access-1', 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(res.status).toBe(200);
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id === 'access-1');
    expect(line).toMatchObject({
      level: 'info',
      method: 'POST',
      path: '/svc/orders',
      route: 'svc',
      status: 200,
      upstream: 'svc',
      upstream_status: 200,
      bytes_in: 5,
      bytes_out: Buffer.byteLength(res.body),
      client_address: '127.0.0.1',
      trace_id: res.headers['x-trace-id'],
      request_id: 'access-1',
      trace_flags: '03',
      sampled: true,
    });
    expect(typeof line.duration_ms).toBe('number');
    expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(gateway.logs.filter((l) => l.msg === 'request completed' && l.request_id === 'access-1')).toHaveLength(1);
    const all = JSON.stringify(gateway.logs);
    expect(all).not.toContain('top-secret-token');
    expect(all).not.toContain('top-secret-cookie');
    const debug = gateway.logs.find((l) => l.msg === 'forwarding request' && l.request_id === 'access-1')!;
    expect((debug.headers as Record<string, string>).authorization).toBe('[REDACTED]');
  });

  it('keeps every line on one line, whatever the client sends', async () => {
    await send(`${gateway.url}/svc/inject`, { headers: { 'user-agent': 'evil\\n{"level":"fatal","msg":"forged"}', 'x-request-id': 'inject-1' } });
    await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id === 'inject-1');
    expect(gateway.logs.some((l) => l.msg === 'forged')).toBe(false);
  });
});

describe('500 concurrent requests', () => {
  it('keep their own IDs in every log line, response header and upstream request', async () => {
    const agent = new Agent({ connections: 100 });
    const N = 500;
    const sent = Array.from({ length: N }, (_, i) => ({
      traceId: randomBytes(16).toString('hex'),
      parent: randomBytes(8).toString('hex'),
      requestId: `conc-${i}`,
    }));
    const results = await Promise.all(
      sent.map(async (s) => {
        const res = await request(`${gateway.url}/svc/c/${s.requestId}`, {
          dispatcher: agent,
          headers: { traceparent: `00-${s.traceId}-${s.parent}-01`, 'x-request-id': s.requestId },
        });
        const body = (await res.body.json()) as { traceparent: string; rid: string };
        return { s, status: res.statusCode, headers: res.headers, body };
      }),
    );
    await agent.close();

    const spanIdsByTrace = new Map<string, string>();
    for (const { s, status, headers, body } of results) {
      expect(status).toBe(200);
      expect(headers['x-trace-id']).toBe(s.traceId);
      expect(headers['x-request-id']).toBe(s.requestId);
      expect(body.rid).toBe(s.requestId);
      expect(body.traceparent.split('-')[1]).toBe(s.traceId);
      const upstreamSaw = upstream.requests.filter((r) => r.headers['x-request-id'] === s.requestId);
      expect(upstreamSaw).toHaveLength(1);
      expect(rawHeaderValues(upstreamSaw[0]!, 'traceparent')).toHaveLength(1);
      spanIdsByTrace.set(s.traceId, (headers.traceresponse as string).split('-')[2]!);
    }

    await gateway.waitForLog((l) => l.msg === 'request completed' && l.request_id === 'conc-499');
    const deadline = Date.now() + 5000;
    const mine = () => gateway.logs.filter((l) => typeof l.request_id === 'string' && l.request_id.startsWith('conc-'));
    while (mine().filter((l) => l.msg === 'request completed').length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    const byRequest = new Map(sent.map((s) => [s.requestId, s]));
    const lines = mine();
    // Three lines per request at debug level: forwarding, upstream responded, completed.
    expect(lines.length).toBe(N * 3);
    for (const line of lines) {
      const s = byRequest.get(line.request_id!)!;
      expect(line.trace_id).toBe(s.traceId);
      expect(line.span_id).toBe(spanIdsByTrace.get(s.traceId));
      if (line.path !== undefined) expect(line.path).toBe(`/svc/c/${s.requestId}`);
    }
  });
});
