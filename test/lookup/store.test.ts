import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { TraceStore } from '../../src/lookup/store.js';
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
      // About four of the gateway's spans (~360 bytes each, encoded).
      startAdminGateway(routes, { store: { maxSpans: 1000, maxBytes: 1500 } }),
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
    expect(m.bytes).toBeGreaterThan(4 * 200);
    expect(m.bytes).toBeLessThan(4 * 1000);
  });

  it('evicts the oldest spans by bytes, never holding more than maxBytes', async () => {
    const traces: string[] = [];
    for (let i = 0; i < 6; i++) traces.push((await tracedRequest(byBytes, `/api/${i}`)).traceId);
    const m = await storeMetrics(byBytes);
    expect(m.bytes).toBeLessThanOrEqual(1500);
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

  it('gives back what the SDK span held: ids, parent, service, kind, times, status, attributes of every kind, events', () => {
    const store = new TraceStore({ maxSpans: 10, maxBytes: 1e9 });
    const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': 'gw-store' }), spanProcessors: [store] });
    const tracer = provider.getTracer('t');
    const parent = tracer.startSpan('parent', { kind: SpanKind.SERVER });
    const attributes = { s: 'é\u{1F600}', i: 42, neg: -7, big: -(2 ** 60), d: 0.25, b: false, list: ['a', 'b'], nums: [1, 2.5], map: { k: ['x', 1] } };
    const child = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes }, trace.setSpan(ROOT_CONTEXT, parent));
    child.recordException(new Error('refused'));
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
    child.end();
    parent.end();
    const sdk = child as unknown as import('@opentelemetry/sdk-trace').ReadableSpan;
    const [got, gotParent] = store.spansOf(child.spanContext().traceId);
    const hrMs = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
    expect(got).toMatchObject({
      traceId: sdk.spanContext().traceId,
      spanId: sdk.spanContext().spanId,
      parentSpanId: parent.spanContext().spanId,
      service: 'gw-store',
      name: 'GET',
      kind: 'CLIENT',
      status: 'ERROR',
      statusMessage: 'upstream refused',
      attributes,
    });
    expect(got!.startMs).toBeCloseTo(hrMs(sdk.startTime), 3);
    expect(got!.durationMs).toBeCloseTo(hrMs(sdk.duration), 3);
    expect(got!.events).toEqual([{ name: 'exception', attributes: sdk.events[0]!.attributes }]);
    expect(gotParent).toMatchObject({ kind: 'SERVER', parentSpanId: undefined, status: 'UNSET', statusMessage: undefined, events: [] });
    expect(store.stats().oldestStartMs).toBeCloseTo(hrMs(sdk.startTime), 3);
  });

  it('keeps spans across many wraps of its buffer, growing it up to maxBytes and never past', () => {
    const { store, request } = setup(100_000, 300 * 1024);
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push(request(`r${i}`, { 'url.path': `/items/${'x'.repeat(i % 300)}` }));
    const stats = store.stats();
    expect(stats.bytes).toBeLessThanOrEqual(300 * 1024);
    expect(stats.spans + stats.evicted).toBe(5000);
    // The newest spans are all there, in order, and decode to their own request IDs.
    for (let i = 5000 - stats.spans; i < 5000; i += 97) {
      expect(store.spansOf(ids[i]!)[0]!.attributes['gateway.request_id']).toBe(`r${i}`);
      expect(store.traceIdsForRequest(`r${i}`)).toEqual([ids[i]]);
    }
    expect(store.spansOf(ids[0]!)).toEqual([]);
  });
});
