import type { Attributes } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OtlpProtoEncoder } from '../../src/telemetry/otlp-proto.js';
import { spanWith } from '../helpers/sdk-spans.js';

// A file of its own: the encoder keeps attribute keys process-wide (up to a limit), and the other
// encoder tests fill that limit on purpose, after which no new key would take the one-pass path.

function sdkBytes(spans: ReadableSpan[]): Buffer {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);
}

function encode(encoder: OtlpProtoEncoder, spans: ReadableSpan[]): Buffer {
  for (const span of spans) encoder.add(span);
  return Buffer.from(encoder.take()!.bytes);
}

describe('OTLP protobuf encoding of attributes under kept keys', () => {
  it('property: written in one pass, they encode as the SDK encodes them, at every length boundary', async () => {
    const provider = new TracerProvider({ spanLimits: { attributeCountLimit: 1000 } });
    // Keys and values sized around the one-byte lengths (a KeyValue of 127 bytes or more, strings
    // of 125+ characters), ASCII or not, and integers around each varint size and the 2^31 limit.
    // Drawn from a fixed pool, well under the kept-key limit, so that keys recur from run to run.
    const keyShapes = fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ minLength: 90, maxLength: 130 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }));
    const key = fc.constantFrom(...new Set(fc.sample(keyShapes, { numRuns: 300, seed: 7 })));
    const mixed = fc.string({ unit: fc.constantFrom('a', 'Z', '~', '\u007f', '\u0080', 'é', '\u00ff', '€', '\u{1F600}'), maxLength: 60 });
    const text = fc.oneof(fc.string({ maxLength: 130 }), fc.string({ unit: 'grapheme', maxLength: 70 }), mixed, fc.string({ minLength: 100, maxLength: 128 }));
    const edge = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 2 ** 31 - 1, 2 ** 31, 2 ** 32, -1, -128, 0.5];
    const int = fc.oneof(fc.constantFrom(...edge), fc.integer(), fc.integer({ min: 0, max: 300 }));
    fc.assert(
      fc.property(fc.dictionary(key, fc.oneof(text, int, fc.boolean()), { minKeys: 1, maxKeys: 10 }), (attributes) => {
        const spans = [spanWith(attributes as Attributes, provider), spanWith(attributes as Attributes, provider)];
        const encoder = new OtlpProtoEncoder();
        // The first batch keeps the keys; the second writes every attribute under a kept key.
        expect(encode(encoder, spans)).toEqual(sdkBytes(spans));
        expect(encode(encoder, spans)).toEqual(sdkBytes(spans));
      }),
      { numRuns: 400 },
    );
    await provider.shutdown();
  });
});
