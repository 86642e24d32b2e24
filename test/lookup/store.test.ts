import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { TraceStore, estimateSpanBytes } from '../../src/lookup/store.js';
import { parseExposition } from '../helpers/exposition.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { adminGet, startAdminGateway, tracedRequest, type AdminGateway } from './helpers.js';

async function storeMetrics(gateway: AdminGateway): Promise<{ spans: number; bytes: number; evicted: number }> {
  const families = parseExposition((await send(`${gateway.url}/metrics`)).body);
  const value = (name: string): number => families.get(name)?.samples[0]?.value ?? NaN;
  return { spans: value('gateway_trace_store_spans'), bytes: value('gateway_trace_store_bytes'), evicted: value('gateway_trace_store_evicted_total') };
}

describe('the embedded store in a running gateway', () => {
  let upstream: TestUpstream;
  let byCount: AdminGateway;
  let byBytes: AdminGateway;

  beforeAll(async () => {
    upstream = await startUpstream();
    const routes = [{ name: 'users', prefix: '/api', url: upstream.url }];
    [byCount, byBytes] = await Promise.all([
      startAdminGateway(routes, { store: { maxSpans: 4, maxBytes: 33_554_432 } }),
      // About four of the gateway's spans (~1.6 KB estimated each).
      startAdminGateway(routes, { store: { maxSpans: 1000, maxBytes: 7000 } }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([byCount?.stop(), byBytes?.stop()]);
    await upstream?.close();
  });

  it('evicts the oldest spans by count, and exports its size', async () => {
    const traces: string[] = [];
    for (let i = 0; i < 5; i++) traces.push((await tracedRequest(byCount, `/api/${i}`)).traceId);
    // 5 requests × 2 spans into a 4-span store: the last two traces remain whole.
    expect((await adminGet(byCount, `/admin/traces/${traces[0]}`)).status).toBe(404);
    expect((await adminGet(byCount, `/admin/traces/${traces[2]}`)).status).toBe(404);
    for (const id of traces.slice(3)) {
      const res = await adminGet(byCount, `/admin/traces/${id}`);
      expect(res.status).toBe(200);
      expect(res.json<{ spanCount: number }>().spanCount).toBe(2);
    }
    const m = await storeMetrics(byCount);
    expect(m.spans).toBe(4);
    expect(m.evicted).toBe(6);
    expect(m.bytes).toBeGreaterThan(4 * 1000);
    expect(m.bytes).toBeLessThan(4 * 4000);
  });

  it('evicts the oldest spans by bytes, never holding more than maxBytes', async () => {
    const traces: string[] = [];
    for (let i = 0; i < 6; i++) traces.push((await tracedRequest(byBytes, `/api/${i}`)).traceId);
    const m = await storeMetrics(byBytes);
    expect(m.bytes).toBeLessThanOrEqual(7000);
    expect(m.spans).toBeGreaterThanOrEqual(2);
    expect(m.spans).toBeLessThan(12);
    expect(m.evicted).toBe(12 - m.spans);
    expect((await adminGet(byBytes, `/admin/traces/${traces[0]}`)).status).toBe(404);
    expect((await adminGet(byBytes, `/admin/traces/${traces[5]}`)).json<{ spanCount: number }>().spanCount).toBe(2);
    const notFound = (await adminGet(byBytes, `/admin/traces/${traces[0]}`)).json<{ reasons: string[] }>();
    expect(notFound.reasons.join(' ')).toMatch(/most recent 1000 spans .* evicted first; it currently reaches back to \d{4}-/);
  });
});

describe('TraceStore with the real SDK', () => {
  function setup(maxSpans: number, maxBytes: number) {
    const store = new TraceStore({ maxSpans, maxBytes });
    const tracer = new TracerProvider({ spanProcessors: [store] }).getTracer('test');
    const request = (requestId: string, extra: Record<string, string> = {}): string => {
      const server = tracer.startSpan('GET /x/*', { kind: SpanKind.SERVER, attributes: { 'gateway.request_id': requestId, ...extra } });
      const traceId = server.spanContext().traceId;
      server.end();
      return traceId;
    };
    return { store, request };
  }

  it('keeps insertion order across the ring and resolves request IDs newest first', () => {
    const { store, request } = setup(3, 1e9);
    const ids = ['a', 'b', 'c', 'd', 'e', 'b'].map((r) => request(r));
    expect(store.stats()).toMatchObject({ spans: 3, evicted: 3 });
    expect(store.spansOf(ids[0]!)).toEqual([]);
    expect(store.spansOf(ids[4]!)).toHaveLength(1);
    expect(store.traceIdsForRequest('b')).toEqual([ids[5]]);
    expect(store.traceIdsForRequest('a')).toEqual([]);
  });

  it('shrinking the limits keeps the newest spans; zero turns the store off', () => {
    const { store, request } = setup(10, 1e9);
    const ids = ['1', '2', '3', '4'].map((r) => request(r));
    store.configure({ maxSpans: 2, maxBytes: 1e9 });
    expect(store.stats().spans).toBe(2);
    expect(store.spansOf(ids[3]!)).toHaveLength(1);
    expect(store.spansOf(ids[1]!)).toEqual([]);
    store.configure({ maxSpans: 0, maxBytes: 0 });
    request('5');
    expect(store.stats()).toMatchObject({ spans: 0, bytes: 0 });
    expect(store.enabled).toBe(false);
  });

  it('counts attribute sizes, so a span larger than the whole store is refused, not kept', () => {
    const { store, request } = setup(100, 8000);
    const small = request('small');
    const big = request('big', { 'user_agent.original': 'x'.repeat(10_000) });
    expect(store.spansOf(small)).toHaveLength(1);
    expect(store.spansOf(big)).toEqual([]);
    expect(store.stats()).toMatchObject({ spans: 1, evicted: 1 });
    expect(store.stats().bytes).toBeLessThanOrEqual(8000);
  });

  it('estimates grow with what the span holds', () => {
    const store = new TraceStore({ maxSpans: 10, maxBytes: 1e9 });
    const tracer = new TracerProvider({ spanProcessors: [store] }).getTracer('t');
    const a = tracer.startSpan('a', { attributes: { k: 'v' } });
    const b = tracer.startSpan('a', { attributes: { k: 'v'.repeat(1000) } });
    a.end();
    b.end();
    const [sa, sb] = [a, b].map((s) => estimateSpanBytes(s as unknown as Parameters<typeof estimateSpanBytes>[0]));
    expect(sb! - sa!).toBe(999);
  });
});
