// The gateway's own spans against the SDK's: the same calls, with the same sampler, limits, ids
// and processors, must give span processors the same ReadableSpan (times aside, which are taken
// at different moments).
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type HrTime, type Link, type Span } from '@opentelemetry/api';
import { TraceState, suppressTracing } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TracerProvider,
  type IdGenerator,
  type ReadableSpan,
  type Sampler,
  type SpanLimits,
} from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GatewayTracer, GatewaySpan } from '../../src/tracing/gateway-tracer.js';
import { EVERY_VALUE_KIND } from '../helpers/sdk-spans.js';

/** Hands out the same ids, in order, to whichever tracer asks. */
class CountingIds implements IdGenerator {
  private n = 0;
  generateTraceId(): string {
    return (++this.n).toString(16).padStart(32, 'a');
  }
  generateSpanId(): string {
    return (++this.n).toString(16).padStart(16, 'b');
  }
}

type Start = (name: string, kind: SpanKind, attributes: Attributes, parent: Context, links?: Link[]) => Span;

interface Setup {
  sampler?: Sampler;
  limits?: SpanLimits;
}

const resource = resourceFromAttributes({ 'service.name': 'gw-test' });

/** Runs `script` once with SDK spans and once with gateway spans; returns what each exporter got. */
function both(setup: Setup, script: (start: Start) => void): { sdk: ReadableSpan[]; gateway: ReadableSpan[] } {
  const sdkMemory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource,
    sampler: setup.sampler ?? new AlwaysOnSampler(),
    spanLimits: setup.limits ?? {},
    idGenerator: new CountingIds(),
    spanProcessors: [new SimpleSpanProcessor({ exporter: sdkMemory })],
  });
  const sdkTracer = provider.getTracer('tracing-gateway');
  script((name, kind, attributes, parent, links) => {
    const span = sdkTracer.startSpan(name, links === undefined ? { kind } : { kind, links }, parent);
    if (span.isRecording()) span.setAttributes(attributes);
    return span;
  });

  const gwMemory = new InMemorySpanExporter();
  const tracer = new GatewayTracer({
    resource,
    sampler: setup.sampler ?? new AlwaysOnSampler(),
    spanLimits: setup.limits ?? {},
    idGenerator: new CountingIds(),
    spanProcessors: [new SimpleSpanProcessor({ exporter: gwMemory })],
  });
  script((name, kind, attributes, parent, links) => tracer.startSpan(name, kind, attributes, parent, links));
  return { sdk: sdkMemory.getFinishedSpans(), gateway: gwMemory.getFinishedSpans() };
}

/** Exact nanoseconds (a Number cannot hold epoch nanoseconds exactly). */
const ns = (t: HrTime): bigint => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);

/** Everything a processor or exporter reads, times replaced by their order. */
function view(span: ReadableSpan) {
  return {
    name: span.name,
    kind: span.kind,
    // The gateway's flags also carry the W3C random bit (checked on its own below).
    spanContext: { ...span.spanContext(), traceFlags: span.spanContext().traceFlags & TraceFlags.SAMPLED },
    parentSpanContext: span.parentSpanContext,
    attributes: span.attributes,
    droppedAttributesCount: span.droppedAttributesCount,
    links: span.links,
    droppedLinksCount: span.droppedLinksCount,
    events: span.events.map(({ time: _time, ...rest }) => rest),
    droppedEventsCount: span.droppedEventsCount,
    status: span.status,
    ended: span.ended,
    resource: span.resource.attributes,
    scope: span.instrumentationScope,
  };
}

function expectSame(result: { sdk: ReadableSpan[]; gateway: ReadableSpan[] }, count: number): void {
  expect(result.sdk).toHaveLength(count);
  expect(result.gateway.map(view)).toEqual(result.sdk.map(view));
  for (const span of result.gateway) {
    expect(span).toBeInstanceOf(GatewaySpan);
    const start = ns(span.startTime);
    const end = ns(span.endTime);
    expect(end >= start).toBe(true);
    expect(ns(span.duration)).toBe(end - start);
    expect(Math.abs(Number(start / 1_000_000n) - Date.now())).toBeLessThan(60_000);
  }
}

const remote = (flags: number, traceState?: TraceState): Context =>
  trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: flags, isRemote: true, traceState });

describe('gateway spans read like SDK spans', () => {
  it('a server span continuing a remote parent, and its client child', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const result = both({}, (start) => {
      const server = start('GET /api/*', SpanKind.SERVER, { 'http.request.method': 'GET', 'url.path': '/api/x', 'server.port': 8080 }, remote(1, new TraceState('congo=t61rcWkgMzE')));
      const client = start('GET', SpanKind.CLIENT, { 'url.full': 'http://127.0.0.1:1/x' }, trace.setSpan(ROOT_CONTEXT, server));
      client.setAttribute('http.response.status_code', 502);
      client.recordException(refused);
      client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
      client.end();
      server.updateName('GET /api/x');
      server.setAttribute('http.response.status_code', 502);
      server.setStatus({ code: SpanStatusCode.ERROR });
      server.end();
    });
    expectSame(result, 2);
    expect(result.gateway[1]!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(result.gateway[0]!.parentSpanContext?.spanId).toBe(result.gateway[1]!.spanContext().spanId);
  });

  it('every attribute value kind, under count and length limits', () => {
    for (const limits of [{}, { attributeCountLimit: 6, attributeValueLengthLimit: 3 }, { attributeCountLimit: 0 }, { attributeValueLengthLimit: 2048 }]) {
      const result = both({ limits }, (start) => {
        const span = start('s', SpanKind.SERVER, { first: 'abcdefgh', n: 1 }, ROOT_CONTEXT);
        span.setAttributes(EVERY_VALUE_KIND as Attributes);
        span.setAttribute('first', 'overwritten-value');
        span.setAttribute('', 'empty key');
        span.setAttribute('undefined', undefined as never);
        span.setAttribute('fn', (() => 1) as never);
        span.end();
      });
      expectSame(result, 1);
    }
  });

  it('attributes given at start are held to the same limits as those set later, whatever object holds them', () => {
    const given = (): Attributes[] => [
      { 'url.path': '/abcdef', n: 2, ok: true },
      { 'url.path': '/abcdef', '': 'empty key', u: undefined, list: [1, 2] },
      Object.freeze({ 'url.path': '/abcdef', n: 2 }),
      Object.assign(Object.create(null) as Attributes, { 'url.path': '/abcdef', n: 2 }),
    ];
    for (const limits of [{}, { attributeValueLengthLimit: 3 }, { attributeCountLimit: 1 }, { attributeCountLimit: 3, attributeValueLengthLimit: 7 }]) {
      for (const [i] of given().entries()) {
        const result = both({ limits }, (start) => {
          const span = start('s', SpanKind.SERVER, given()[i]!, ROOT_CONTEXT);
          span.setAttribute('late', 1);
          span.end();
        });
        expectSame(result, 1);
      }
    }
  });

  it('random string, number and boolean attributes under random limits (property)', () => {
    const value = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.double(), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 20 }), fc.nat(25), fc.integer({ min: 1, max: 50 }), (attributes, count, length) => {
        const result = both({ limits: { attributeCountLimit: count, attributeValueLengthLimit: length } }, (start) => {
          const span = start('s', SpanKind.CLIENT, attributes, ROOT_CONTEXT);
          span.setAttributes(attributes);
          span.end();
        });
        expectSame(result, 1);
      }),
      { numRuns: 200 },
    );
  });

  it('links and events, under their limits', () => {
    const links: Link[] = [
      { context: { traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 0, isRemote: true }, attributes: { 'gateway.link.reason': 'untrusted_inbound_context', long: 'x'.repeat(10) } },
      { context: { traceId: '33333333333333333333333333333333', spanId: '4444444444444444', traceFlags: 1, traceState: new TraceState('a=1') } },
    ];
    const bad = new TypeError('bad');
    for (const limits of [{}, { linkCountLimit: 1, eventCountLimit: 1, attributePerEventCountLimit: 1, attributePerLinkCountLimit: 1, attributeValueLengthLimit: 4 }, { linkCountLimit: 0, eventCountLimit: 0 }]) {
      const result = both({ limits }, (start) => {
        const span = start('s', SpanKind.SERVER, {}, ROOT_CONTEXT, links);
        span.addLink({ context: links[0]!.context, attributes: { added: true } });
        span.addEvent('first', { attempt: 1, list: ['a', 'b'] });
        span.recordException('plain message');
        span.recordException(bad);
        span.addEvent('with time', Date.now());
        span.end();
      });
      expectSame(result, 1);
    }
  });

  it('status rules: OK is final, UNSET changes nothing, only ERROR keeps a message', () => {
    const result = both({}, (start) => {
      const a = start('a', SpanKind.SERVER, {}, ROOT_CONTEXT);
      a.setStatus({ code: SpanStatusCode.OK, message: 'dropped' });
      a.setStatus({ code: SpanStatusCode.ERROR, message: 'ignored' });
      a.end();
      const b = start('b', SpanKind.SERVER, {}, ROOT_CONTEXT);
      b.setStatus({ code: SpanStatusCode.ERROR, message: 'first' });
      b.setStatus({ code: SpanStatusCode.UNSET });
      b.setStatus({ code: SpanStatusCode.ERROR, message: 'second' });
      b.end();
    });
    expectSame(result, 2);
    expect(result.gateway.map((s) => s.status)).toEqual([{ code: SpanStatusCode.OK }, { code: SpanStatusCode.ERROR, message: 'second' }]);
  });

  it('after end(): nothing changes and a second end() is not reported again', () => {
    const result = both({}, (start) => {
      const span = start('s', SpanKind.SERVER, { a: 1 }, ROOT_CONTEXT);
      span.end();
      span.setAttribute('late', true);
      span.addEvent('late');
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.updateName('late');
      expect(span.isRecording()).toBe(false);
      span.end();
    });
    expectSame(result, 1);
  });

  it('an explicit end time is kept, and one before the start gives duration 0', () => {
    const tracer = new GatewayTracer({ resource, sampler: new AlwaysOnSampler(), spanLimits: {}, spanProcessors: [] });
    const span = tracer.startSpan('s', SpanKind.SERVER, {}, ROOT_CONTEXT, undefined) as GatewaySpan;
    const end = new Date(Date.now() + 1500);
    span.end(end);
    expect(ns(span.endTime)).toBe(BigInt(end.getTime()) * 1_000_000n);
    expect(ns(span.duration)).toBe(ns(span.endTime) - ns(span.startTime));
    const early = tracer.startSpan('s', SpanKind.SERVER, {}, ROOT_CONTEXT, undefined) as GatewaySpan;
    early.end([0, 5]);
    expect(early.duration).toEqual([0, 0]);
    expect(early.endTime).toEqual(early.startTime);
  });

  it("a child of a live gateway span is timed on its parent's monotonic clock: a sub-millisecond offset is kept, and it ends within its parent", () => {
    const tracer = new GatewayTracer({ resource, sampler: new AlwaysOnSampler(), spanLimits: {}, spanProcessors: [] });
    // Read before the server span starts and after the client span has: the true offset lies within.
    const beforeServer = performance.now();
    const server = tracer.startSpan('GET /api/*', SpanKind.SERVER, {}, ROOT_CONTEXT, undefined) as GatewaySpan;
    const serverStarted = performance.now();
    // The wall clock moves in whole milliseconds: a child started 50 µs later would read the same time.
    while (performance.now() - serverStarted < 0.05);
    const client = tracer.startSpan('GET', SpanKind.CLIENT, {}, trace.setSpan(ROOT_CONTEXT, server), undefined) as GatewaySpan;
    const offset = performance.now() - beforeServer;
    client.end();
    server.end();
    const startOffsetNs = ns(client.startTime) - ns(server.startTime);
    expect(startOffsetNs >= 50_000n).toBe(true);
    expect(startOffsetNs <= BigInt(Math.ceil(offset * 1e6)) + 1_000n).toBe(true);
    expect(ns(client.endTime) <= ns(server.endTime)).toBe(true);

    // No live gateway parent (a remote caller, or a parent already ended): the wall clock, as the SDK's.
    const before = Date.now();
    const alone = tracer.startSpan('GET /api/*', SpanKind.SERVER, {}, remote(1), undefined) as GatewaySpan;
    const late = tracer.startSpan('GET', SpanKind.CLIENT, {}, trace.setSpan(ROOT_CONTEXT, server), undefined) as GatewaySpan;
    for (const span of [alone, late]) {
      expect(span.startTime[1] % 1_000_000).toBe(0);
      expect(ns(span.startTime) >= BigInt(before) * 1_000_000n).toBe(true);
    }
  });
});

describe('sampling', () => {
  it('always_off: a non-recording span that still carries a trace context, and no processor call', () => {
    const result = both({ sampler: new AlwaysOffSampler() }, (start) => {
      const span = start('s', SpanKind.SERVER, { a: 1 }, ROOT_CONTEXT);
      expect(span.isRecording()).toBe(false);
      expect(span.spanContext().traceFlags & TraceFlags.SAMPLED).toBe(TraceFlags.NONE);
      expect(span.spanContext().traceId).toMatch(/^a+[0-9a-f]+$/);
      span.end();
    });
    expect(result.sdk).toEqual([]);
    expect(result.gateway).toEqual([]);
  });

  it('parent-based: an unsampled caller is followed (same trace, its trace state kept), a sampled one recorded', () => {
    const state = new TraceState('vendor=opaque');
    const seen: Array<{ traceId: string; flags: number; state: string | undefined }> = [];
    const result = both({ sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }) }, (start) => {
      for (const flags of [0, 1]) {
        const span = start('s', SpanKind.SERVER, {}, remote(flags, state));
        seen.push({ traceId: span.spanContext().traceId, flags: span.spanContext().traceFlags & TraceFlags.SAMPLED, state: span.spanContext().traceState?.serialize() });
        span.end();
      }
    });
    expectSame(result, 1);
    const expected = { traceId: '0af7651916cd43dd8448eb211c80319c', state: 'vendor=opaque' };
    expect(seen).toEqual([
      { ...expected, flags: 0 },
      { ...expected, flags: 1 },
      { ...expected, flags: 0 },
      { ...expected, flags: 1 },
    ]);
  });

  it('carries the W3C random flag: set on a trace it starts, kept from a caller, recorded or not', () => {
    const flagsOf = (sampler: Sampler, parent: Context) => {
      const tracer = new GatewayTracer({ resource, sampler, spanLimits: {}, spanProcessors: [] });
      const span = tracer.startSpan('s', SpanKind.SERVER, {}, parent, undefined);
      const child = tracer.startSpan('c', SpanKind.CLIENT, {}, trace.setSpan(ROOT_CONTEXT, span), undefined);
      return [span.spanContext().traceFlags, child.spanContext().traceFlags];
    };
    expect(flagsOf(new AlwaysOnSampler(), ROOT_CONTEXT)).toEqual([3, 3]);
    expect(flagsOf(new AlwaysOffSampler(), ROOT_CONTEXT)).toEqual([2, 2]);
    expect(flagsOf(new AlwaysOnSampler(), remote(0x03))).toEqual([3, 3]);
    expect(flagsOf(new AlwaysOnSampler(), remote(0x01))).toEqual([1, 1]);
    expect(flagsOf(new ParentBasedSampler({ root: new AlwaysOnSampler() }), remote(0x02))).toEqual([2, 2]);
  });

  it('suppressed tracing gives an invalid, non-recording span', () => {
    const tracer = new GatewayTracer({ resource, sampler: new AlwaysOnSampler(), spanLimits: {}, spanProcessors: [] });
    const span = tracer.startSpan('s', SpanKind.SERVER, {}, suppressTracing(ROOT_CONTEXT), undefined);
    expect(span.isRecording()).toBe(false);
    expect(span.spanContext().traceId).toBe('00000000000000000000000000000000');
  });
});
