import { SpanStatusCode } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { SpanWireDecoder, SpanWireEncoder } from '../../src/telemetry/span-wire.js';
import { EVERY_VALUE_KIND, makeSpans, spanWith } from '../helpers/sdk-spans.js';

/** Encode → structured clone with the bytes transferred (what postMessage does) → decode. */
function roundTrip(encoder: SpanWireEncoder, decoder: SpanWireDecoder, spans: ReadableSpan[]): ReadableSpan[] {
  const batch = encoder.encode(spans);
  return decoder.decode(structuredClone(batch, { transfer: [batch.bytes] }));
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
    const span = spanWith(EVERY_VALUE_KIND, provider);
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
