import { SpanKind, ROOT_CONTEXT, trace, type Attributes } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OtlpProtoEncoder } from '../../src/telemetry/otlp-proto.js';
import { EVERY_VALUE_KIND, makeSpans, spanWith } from '../helpers/sdk-spans.js';

/** What the SDK's own OTLP/protobuf serializer makes of the same spans. */
function sdkBytes(spans: ReadableSpan[]): Buffer {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);
}

function encode(encoder: OtlpProtoEncoder, spans: ReadableSpan[]): Buffer {
  for (const span of spans) encoder.add(span);
  expect(encoder.size).toBe(spans.length);
  const batch = encoder.take()!;
  expect(batch.spans).toBe(spans.length);
  expect(encoder.size).toBe(0);
  return Buffer.from(batch.bytes);
}

describe('OTLP protobuf encoding on the request thread', () => {
  it('writes exactly the bytes the SDK serializer writes: every span field, events, links, trace state, remote parents', async () => {
    const { spans, provider } = makeSpans();
    expect(encode(new OtlpProtoEncoder(), spans)).toEqual(sdkBytes(spans));
    await provider.shutdown();
  });

  it('writes every attribute value kind as the SDK does (long strings, non-ASCII, int64, doubles, arrays, maps, bytes)', async () => {
    const provider = new TracerProvider();
    const spans = [spanWith(EVERY_VALUE_KIND, provider), spanWith({ min: -(2 ** 63), max: 2 ** 63, neg: -1, huge: 1e300, small: 5e-324 }, provider)];
    expect(encode(new OtlpProtoEncoder(), spans)).toEqual(sdkBytes(spans));
    await provider.shutdown();
  });

  it('writes attribute keys the same the first time and when repeated (kept keys), non-ASCII and past the kept-key limit included', async () => {
    const provider = new TracerProvider({ spanLimits: { attributeCountLimit: 5000 } });
    const keys = { 'clé': 'v', '追踪.网关': 1, 'emoji.\u{1F600}': true, 'lone.\uD800': 'x', 'http.request.method': 'GET' };
    const many: Attributes = {};
    for (let i = 0; i < 1500; i++) many[`key.${i}`] = i;
    const spans = [spanWith(keys, provider), spanWith(keys, provider), spanWith(many, provider), spanWith(many, provider), spanWith(keys, provider)];
    const encoder = new OtlpProtoEncoder();
    expect(encode(encoder, spans)).toEqual(sdkBytes(spans));
    expect(encode(encoder, spans)).toEqual(sdkBytes(spans));
    await provider.shutdown();
  });

  it('writes ids given in upper or mixed case hex as the SDK does', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
    const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0AF7651916CD43dd8448EB211C80319C', spanId: 'B7aD6B7169203331', traceFlags: 1, isRemote: true });
    provider.getTracer('t').startSpan('child', { kind: SpanKind.SERVER, links: [{ context: { traceId: 'ABCDEFabcdef0123456789ABCDEF0123', spanId: 'FfEeDdCcBbAa9988', traceFlags: 0 } }] }, parent).end();
    const spans = memory.getFinishedSpans();
    expect(spans[0]!.spanContext().traceId).toBe('0AF7651916CD43dd8448EB211C80319C');
    expect(encode(new OtlpProtoEncoder(), spans)).toEqual(sdkBytes(spans));
    await provider.shutdown();
  });

  it('groups spans by resource and scope in first-seen order, whatever order they end in', async () => {
    const make = (service: string) => {
      const memory = new InMemorySpanExporter();
      const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': service }), spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
      return { memory, provider };
    };
    const a = make('a');
    const b = make('b');
    for (let i = 0; i < 6; i++) {
      const { provider } = i % 2 === 0 ? a : b;
      const tracer = provider.getTracer(i % 3 === 0 ? 'scope-1' : 'scope-2', '1.0.0');
      tracer.startSpan(`s${i}`, { kind: SpanKind.CLIENT }).end();
    }
    const interleaved = [a.memory.getFinishedSpans()[0]!, b.memory.getFinishedSpans()[0]!, a.memory.getFinishedSpans()[1]!, b.memory.getFinishedSpans()[1]!, a.memory.getFinishedSpans()[2]!, b.memory.getFinishedSpans()[2]!];
    expect(encode(new OtlpProtoEncoder(), interleaved)).toEqual(sdkBytes(interleaved));
    await Promise.all([a.provider.shutdown(), b.provider.shutdown()]);
  });

  it('reuses its buffer: each batch holds only its own spans, also when one needs multi-byte lengths', async () => {
    const provider = new TracerProvider();
    const encoder = new OtlpProtoEncoder();
    // Big enough that the ResourceSpans length needs three varint bytes and the buffer grows.
    const big = Array.from({ length: 400 }, (_, i) => spanWith({ 'url.path': `/items/${i}/${'x'.repeat(i)}` }, provider));
    expect(encode(encoder, big)).toEqual(sdkBytes(big));
    const small = [spanWith({ n: 1 }, provider)];
    expect(encode(encoder, small)).toEqual(sdkBytes(small));
    expect(encoder.take()).toBeUndefined();
    await provider.shutdown();
  });

  it('property: any span the gateway could end encodes as the SDK encodes it', async () => {
    const provider = new TracerProvider({ spanLimits: { attributeCountLimit: 1000 } });
    const tracer = provider.getTracer('tracing-gateway');
    const value = fc.oneof(fc.string({ unit: 'binary' }), fc.integer(), fc.double(), fc.boolean(), fc.array(fc.string(), { maxLength: 4 }), fc.array(fc.integer(), { maxLength: 4 }));
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), value, { maxKeys: 12 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.integer({ min: 0, max: 2 }), (attributes, name, code) => {
        const parent = tracer.startSpan('parent');
        const span = tracer.startSpan(name, { kind: SpanKind.SERVER }, trace.setSpan(ROOT_CONTEXT, parent));
        span.setAttributes(attributes as Attributes);
        span.addEvent('e', { name });
        span.setStatus({ code, ...(code === 2 ? { message: name } : {}) });
        span.end();
        parent.end();
        const spans = [span as unknown as ReadableSpan, parent as unknown as ReadableSpan];
        expect(encode(new OtlpProtoEncoder(), spans)).toEqual(sdkBytes(spans));
      }),
      { numRuns: 200 },
    );
    await provider.shutdown();
  });
});
