import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace, type Attributes, type Tracer } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { SpanWireDecoder, SpanWireEncoder } from '../../src/telemetry/span-wire.js';

/** Real SDK spans covering every field the OTLP serialisers read. */
function makeSpans(): { spans: ReadableSpan[]; provider: TracerProvider } {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'gw', 'deployment.environment.name': 'test', 'host.cores': 2 }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer: Tracer = provider.getTracer('tracing-gateway', '1.2.3', { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' });
  const other = provider.getTracer('another-scope');
  const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  });
  const server = tracer.startSpan(
    'GET /api/*',
    {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'url.path': '/api/é/\u{1F600}', 'server.port': 8080, 'gateway.flag': true, 'list.s': ['a', 'b'], 'list.n': [1, 2.5] },
      links: [
        { context: { traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 0, isRemote: true }, attributes: { 'gateway.link.reason': 'untrusted_inbound_context' } },
        { context: { traceId: '33333333333333333333333333333333', spanId: '4444444444444444', traceFlags: 1, traceState: new TraceState('a=1') } },
      ],
    },
    remoteParent,
  );
  const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'url.full': 'http://127.0.0.1:1/x' } }, trace.setSpan(ROOT_CONTEXT, server));
  client.recordException(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  client.addEvent('retry', { attempt: 2 });
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
  client.end();
  server.setStatus({ code: SpanStatusCode.OK });
  server.end();
  const root = other.startSpan('internal work');
  root.end();
  return { spans: memory.getFinishedSpans(), provider };
}

/** Encode → structured clone with the bytes transferred (what postMessage does) → decode. */
function roundTrip(encoder: SpanWireEncoder, decoder: SpanWireDecoder, spans: ReadableSpan[]): ReadableSpan[] {
  const batch = encoder.encode(spans);
  return decoder.decode(structuredClone(batch, { transfer: [batch.bytes] }));
}

/** One span carrying `attributes` (set through the SDK, so they are what a real span holds). */
function spanWith(attributes: Record<string, unknown>, provider: TracerProvider): ReadableSpan {
  const span = provider.getTracer('t').startSpan('s');
  span.setAttributes(attributes as Attributes);
  span.end();
  return span as unknown as ReadableSpan;
}

describe('span wire format (export thread hand-off)', () => {
  it('decoded spans serialise to exactly the same OTLP protobuf and JSON as the originals', async () => {
    const { spans, provider } = makeSpans();
    expect(spans).toHaveLength(3);
    const decoded = roundTrip(new SpanWireEncoder(), new SpanWireDecoder(), spans);
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest(decoded)!)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
    expect(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(decoded)!)).toBe(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans)!));
    await provider.shutdown();
  });

  it('sends resources and scopes once per channel and still decodes later batches', async () => {
    const encoder = new SpanWireEncoder();
    const decoder = new SpanWireDecoder();
    const { spans, provider } = makeSpans();
    const first = encoder.encode(spans);
    expect(first.resources).toHaveLength(1);
    expect(first.scopes).toHaveLength(2);
    decoder.decode(structuredClone(first));
    const second = encoder.encode(spans);
    expect(second.resources).toHaveLength(0);
    expect(second.scopes).toHaveLength(0);
    const decoded = decoder.decode(structuredClone(second));
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest(decoded)!)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
    // Spans of one resource and scope are grouped together, as the originals are.
    expect(decoded[0]!.resource).toBe(decoded[1]!.resource);
    expect(decoded[0]!.instrumentationScope).toBe(decoded[1]!.instrumentationScope);
    await provider.shutdown();
  });

  it('moves the bytes to the receiver: after the transfer the sending side holds none of them', async () => {
    const { spans, provider } = makeSpans();
    const batch = new SpanWireEncoder().encode(spans);
    expect(batch.length).toBeGreaterThan(0);
    expect(batch.bytes.byteLength).toBeGreaterThanOrEqual(batch.length);
    const received = structuredClone(batch, { transfer: [batch.bytes] });
    expect(batch.bytes.byteLength).toBe(0);
    expect(new SpanWireDecoder().decode(received)).toHaveLength(3);
    await provider.shutdown();
  });

  it('sends each attribute key once per channel and refers to it by index afterwards', async () => {
    const { spans, provider } = makeSpans();
    const encoder = new SpanWireEncoder();
    const decoder = new SpanWireDecoder();
    const first = encoder.encode(spans);
    expect(first.keys.map(([, key]) => key)).toContain('http.request.method');
    decoder.decode(structuredClone(first));
    const second = encoder.encode(spans);
    expect(second.keys).toHaveLength(0);
    // The bytes carry indexes, not the key text.
    expect(Buffer.from(second.bytes, 0, second.length).includes('http.request.method')).toBe(false);
    const decoded = decoder.decode(structuredClone(second));
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest(decoded)!)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
    // A decoder that missed the definitions says so instead of inventing keys.
    expect(() => new SpanWireDecoder().decode(structuredClone(encoder.encode(spans)))).toThrow(/never defined/);
    await provider.shutdown();
  });

  it('round-trips every attribute value the SDK accepts, any length and script', async () => {
    const provider = new TracerProvider();
    const long = 'x'.repeat(5000);
    const mixed = `${'a'.repeat(95)}é${'\u{1F600}'.repeat(40)}`;
    const attributes = {
      ascii: 'plain',
      empty: '',
      long,
      mixed,
      cjk: '追踪网关',
      lone: 'a\uD800b',
      int: 42,
      negative: -7,
      float: 0.1,
      big: 2 ** 53 + 2,
      nan: Number.NaN,
      yes: true,
      no: false,
      strings: ['a', 'é', ''],
      numbers: [1, 2.5, -0],
      bools: [true, false],
      withNull: ['a', null, 'b'],
      bytes: new Uint8Array([0, 1, 254, 255]),
      map: { nested: { deep: ['x', 1] }, flag: true },
      nothing: null,
    };
    const span = spanWith(attributes, provider);
    const [decoded] = roundTrip(new SpanWireEncoder(), new SpanWireDecoder(), [span]);
    // A lone surrogate is not valid UTF-8: it arrives as U+FFFD, as OTLP/protobuf would send it anyway.
    const { lone, ...rest } = decoded!.attributes;
    const { lone: originalLone, ...originalRest } = span.attributes;
    expect(rest).toEqual(originalRest);
    expect(originalLone).toBe('a\uD800b');
    expect(lone).toBe('a\uFFFDb');
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest([decoded!])!)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest([span])!));
    await provider.shutdown();
  });

  it('writes keys inline once the key table is full, and the batch still decodes', async () => {
    const provider = new TracerProvider({ spanLimits: { attributeCountLimit: 10_000 } });
    const many: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) many[`key.${i}`] = `v${i}`;
    const span = spanWith(many, provider);
    const encoder = new SpanWireEncoder();
    const batch = encoder.encode([span]);
    expect(batch.keys.length).toBeLessThan(5000);
    const [decoded] = new SpanWireDecoder().decode(structuredClone(batch));
    expect(decoded!.attributes).toEqual(span.attributes);
    await provider.shutdown();
  });

  it('defines resources and scopes again for a new receiver, also in the batch that was open', async () => {
    const { spans, provider } = makeSpans();
    const encoder = new SpanWireEncoder();
    new SpanWireDecoder().decode(structuredClone(encoder.encode(spans)));
    // The receiver is replaced while a batch is being built.
    encoder.add(spans[0]!);
    encoder.forgetSent();
    encoder.add(spans[2]!);
    const batch = encoder.take()!;
    expect(batch.resources).toHaveLength(1);
    expect(batch.scopes).toHaveLength(2);
    expect(batch.keys.map(([, key]) => key)).toContain('http.request.method');
    const decoded = new SpanWireDecoder().decode(structuredClone(batch));
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest(decoded)!)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest([spans[0]!, spans[2]!])!));
    await provider.shutdown();
  });

  it('keeps attribute values as their types (numbers, booleans, arrays) and the remote-parent flag', async () => {
    const { spans, provider } = makeSpans();
    const [client, server] = roundTrip(new SpanWireEncoder(), new SpanWireDecoder(), spans);
    expect(server!.attributes).toEqual(spans[1]!.attributes);
    expect(server!.parentSpanContext).toMatchObject({ spanId: 'b7ad6b7169203331', isRemote: true });
    expect(server!.spanContext().traceState?.serialize()).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    expect(client!.events.map((e) => e.name)).toEqual(['exception', 'retry']);
    expect(client!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
    expect(client!.duration).toEqual(spans[0]!.duration);
    await provider.shutdown();
  });
});
