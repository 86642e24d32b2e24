import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let upstream: TestUpstream;
let receiver: OtlpReceiver;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    req.resume();
    setTimeout(() => res.end('done'), 600);
  });
  receiver = await startOtlpReceiver();
});

afterAll(async () => {
  await upstream?.close();
  await receiver?.close();
});

describe('SIGTERM', () => {
  it('lets in-flight requests finish, flushes their spans, refuses new connections and exits 0', async () => {
    // A long batch delay: spans reach the receiver only because shutdown flushes them.
    const gateway = await startGateway(configFor([{ name: 'slow', prefix: '/slow', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    });
    const inflight = Array.from({ length: 20 }, (_, i) => send(`${gateway.url}/slow/${i}`));
    await new Promise((r) => setTimeout(r, 200));
    const exit = gateway.stop('SIGTERM');
    // Once the gateway says it is draining, its listener is closed.
    await gateway.waitForLog((l) => String(l.msg).startsWith('shutting down'));
    await new Promise((r) => setTimeout(r, 100));
    const refused = await send(`${gateway.url}/slow/late`).then(
      // A connection the kernel queued before the listener closed gets a clean 503 instead.
      (res) => (res.status === 503 && res.json().error === 'shutting_down' ? 'shutting_down' : `answered ${res.status}`),
      (err: NodeJS.ErrnoException) => err.code,
    );
    const responses = await Promise.all(inflight);
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(['ECONNREFUSED', 'shutting_down']).toContain(refused);
    expect(await exit).toBe(0);

    const traceIds = new Set(responses.map((r) => r.headers['x-trace-id']));
    const flushed = receiver.spans.filter((s) => traceIds.has(s.traceId));
    expect(flushed).toHaveLength(40);
    expect(gateway.logs.some((l) => l.msg === 'shutdown complete: spans flushed')).toBe(true);
  });

  it('under steady load: every accepted request succeeds, later ones are refused, spans are flushed, exit 0 promptly', async () => {
    const gateway = await startGateway(configFor([{ name: 'slow', prefix: '/slow', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    });
    const results: Array<{ id: string; status?: number; traceId?: string; error?: string; body?: string }> = [];
    let running = true;
    let n = 0;
    const workers = Array.from({ length: 8 }, async () => {
      while (running) {
        const id = `load-${++n}`;
        try {
          const res = await send(`${gateway.url}/slow/${id}`, { headers: { 'x-request-id': id } });
          results.push({ id, status: res.status, traceId: res.headers['x-trace-id'] as string, body: res.body });
        } catch (err) {
          results.push({ id, error: (err as NodeJS.ErrnoException).code });
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const stoppedAt = Date.now();
    const exit = gateway.stop('SIGTERM');
    const code = await exit;
    const exitMs = Date.now() - stoppedAt;
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all(workers);

    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(5000);
    // A connection the kernel queued just before the listener closed is answered with a clean
    // 503 `shutting_down` (and Connection: close); later ones are refused at the TCP level.
    const drained = (r: (typeof results)[number]) => r.status === 503 && JSON.parse(r.body!).error === 'shutting_down';
    const answered = results.filter((r) => r.status !== undefined && !drained(r));
    const refused = results.filter((r) => r.error !== undefined || drained(r));
    expect(answered.length).toBeGreaterThan(8);
    expect(refused.length).toBeGreaterThan(0);
    // Every request the gateway took in was answered 200; the refused ones never reached the upstream.
    expect(answered.map((r) => r.status)).toEqual(answered.map(() => 200));
    for (const r of refused) {
      if (r.error !== undefined) expect(['ECONNREFUSED', 'ECONNRESET']).toContain(r.error);
      expect(upstream.requests.some((u) => u.headers['x-request-id'] === r.id)).toBe(false);
    }
    const flushed = new Set(receiver.spans.map((s) => s.traceId));
    for (const r of answered) expect(flushed.has(r.traceId!)).toBe(true);
  });
});
