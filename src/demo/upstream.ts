import { createServer, type Server } from 'node:http';

/**
 * A tiny upstream for trying the gateway without any other service:
 *   GET  /            → JSON greeting with the trace headers it received
 *   GET  /slow?ms=N   → answers after N ms (max 30 s)
 *   ANY  /status/NNN  → answers with that status code
 *   POST /echo        → streams the request body back
 *   GET  /health      → 200
 */
export function createDemoUpstream(): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    const json = (status: number, body: unknown) => {
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    };
    if (url.pathname === '/health') return json(200, { status: 'ok' });
    if (url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    const status = /^\/status\/([1-5]\d\d)$/.exec(url.pathname);
    if (status) return json(Number(status[1]), { status: Number(status[1]) });
    const info = {
      service: 'demo-upstream',
      method: req.method,
      path: url.pathname,
      traceparent: req.headers.traceparent ?? null,
      tracestate: req.headers.tracestate ?? null,
      request_id: req.headers['x-request-id'] ?? null,
      forwarded_for: req.headers['x-forwarded-for'] ?? null,
    };
    if (url.pathname === '/slow') {
      const ms = Math.min(Number(url.searchParams.get('ms') ?? 1000) || 0, 30_000);
      setTimeout(() => json(200, { ...info, slept_ms: ms }), ms);
      return;
    }
    json(200, info);
  });
}
