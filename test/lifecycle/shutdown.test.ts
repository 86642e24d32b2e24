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
    await new Promise((r) => setTimeout(r, 100));
    const refused = await send(`${gateway.url}/slow/late`).then(
      () => 'answered',
      (err: NodeJS.ErrnoException) => err.code,
    );
    const responses = await Promise.all(inflight);
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(refused).toBe('ECONNREFUSED');
    expect(await exit).toBe(0);

    const traceIds = new Set(responses.map((r) => r.headers['x-trace-id']));
    const flushed = receiver.spans.filter((s) => traceIds.has(s.traceId));
    expect(flushed).toHaveLength(40);
    expect(gateway.logs.some((l) => l.msg === 'shutdown complete: spans flushed')).toBe(true);
  });
});
