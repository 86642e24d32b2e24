// OTLP/protobuf span export from the request thread, without a second copy of any span: each
// sampled span is written as its OTLP `Span` message the moment it ends, into one reused byte
// buffer; a batch is those bytes wrapped in ResourceSpans/ScopeSpans, and the standard OTLP HTTP
// transport (otlp-exporter-base: OTEL_EXPORTER_OTLP_* endpoint, headers, timeout, compression,
// retries) sends it. The bytes are exactly what the SDK's own serializer produces for the same
// spans (test/telemetry/otlp-proto.test.ts compares them), field for field and in the same order.
import type { Attributes, HrTime, SpanContext } from '@opentelemetry/api';
import type { ExportResult, InstrumentationScope } from '@opentelemetry/core';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer, type ISerializer } from '@opentelemetry/otlp-transformer';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { BatchedExportProcessor, type SpanChannel } from './batched-export.js';
import type { MonitorOptions } from './export-monitor.js';

/** A protobuf writer over one growing buffer; lengths are back-filled after the content. */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  varint(value: number): void {
    this.reserve(10);
    const buf = this.buf;
    if (value >= 0 && value <= 0xffffffff) {
      let v = value >>> 0;
      while (v > 127) {
        buf[this.pos++] = (v & 127) | 128;
        v >>>= 7;
      }
      buf[this.pos++] = v;
      return;
    }
    // int64, two's complement for negatives (as protobuf encodes int64 varints).
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 4294967296) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 4294967296) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 127) {
      buf[this.pos++] = (low & 127) | 128;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 127;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  fixed32(value: number): void {
    this.reserve(4);
    this.uint32le(value >>> 0);
  }

  /** Four bytes, little-endian; the caller has reserved them (stores, not Buffer#writeUInt32LE's checked call). */
  private uint32le(v: number): void {
    const buf = this.buf;
    const p = this.pos;
    buf[p] = v & 255;
    buf[p + 1] = (v >>> 8) & 255;
    buf[p + 2] = (v >>> 16) & 255;
    buf[p + 3] = v >>> 24;
    this.pos = p + 4;
  }

  double(value: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** HrTime [s, ns] as fixed64 nanoseconds, split into 32-bit halves without losing precision. */
  hrTime(t: HrTime): void {
    const seconds = t[0];
    const nanos = t[1];
    const fromLow16 = (seconds & 65535) * 1e9;
    const fromHigh = ((seconds / 65536) >>> 0) * 1e9;
    const lowSum = (fromLow16 >>> 0) + ((((fromHigh & 65535) * 65536) >>> 0) + nanos);
    const high = (Math.floor(fromLow16 / 4294967296) + ((fromHigh / 65536) >>> 0) + Math.floor(lowSum / 4294967296)) >>> 0;
    this.reserve(8);
    this.uint32le(lowSum >>> 0);
    this.uint32le(high);
  }

  string(s: string): void {
    const n = s.length;
    // Most strings are ASCII: written in one pass, character by character; on the first other
    // character the write is undone and the string goes through the UTF-8 encoder instead.
    const start = this.pos;
    this.varint(n);
    this.reserve(n);
    const buf = this.buf;
    const at = this.pos;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) break;
      buf[at + i] = c;
    }
    if (i === n) {
      this.pos = at + n;
      return;
    }
    this.pos = start;
    const bytes = Buffer.byteLength(s, 'utf8');
    this.varint(bytes);
    this.reserve(bytes);
    this.pos += this.buf.write(s, this.pos, bytes, 'utf8');
  }

  /**
   * A KeyValue's `key` field (tag, length, UTF-8 bytes). Attribute keys repeat on every span, so
   * their encoding is kept (up to KEY_CACHE_MAX keys) and copied instead of written again.
   */
  key(key: string): void {
    const cached = keyCache.get(key);
    if (cached === undefined) {
      const start = this.pos;
      this.tag(1, 2);
      this.string(key);
      if (keyCache.size < KEY_CACHE_MAX) keyCache.set(key, Buffer.from(this.buf.subarray(start, this.pos)));
      return;
    }
    this.reserve(cached.length);
    this.buf.set(cached, this.pos);
    this.pos += cached.length;
  }

  /**
   * The most common attribute, written in one pass: a string of ASCII characters under a kept key,
   * the whole KeyValue shorter than 128 bytes (so every length is one byte). Returns false, with
   * nothing written, for anything else; the general path then writes it (and keeps the key).
   */
  keyValueAscii(kvTag: number, key: string, value: string): boolean {
    const k = keyCache.get(key);
    if (k === undefined) return false;
    const n = value.length;
    // value = 2 { string_value = 1 }: 0x0a, length, bytes.
    const kvLength = k.length + 4 + n;
    if (kvLength > 127) return false;
    let p = this.keyValueStart(kvTag, k, kvLength);
    const buf = this.buf;
    buf[p++] = 0x0a;
    buf[p++] = n;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c > 127) return false; // this.pos has not moved: what was written here is overwritten later
      buf[p++] = c;
    }
    this.pos = p;
    return true;
  }

  /** As keyValueAscii, for an integer value in [0, 2^31): value = 2 { int_value = 3 }. */
  keyValueSmallInt(kvTag: number, key: string, value: number): boolean {
    const k = keyCache.get(key);
    if (k === undefined) return false;
    let size = 1;
    for (let v = value; v > 127; v >>>= 7) size++;
    const kvLength = k.length + 3 + size;
    if (kvLength > 127) return false;
    let p = this.keyValueStart(kvTag, k, kvLength);
    const buf = this.buf;
    buf[p++] = 0x18;
    let v = value;
    while (v > 127) {
      buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[p++] = v;
    this.pos = p;
    return true;
  }

  /**
   * A one-pass KeyValue up to its value's content: tag, length, the kept key field, the value
   * field's tag and length (the rest of the KeyValue). Returns where the value's content starts;
   * this.pos is left to the caller, which moves it only once the whole KeyValue is written.
   */
  private keyValueStart(kvTag: number, k: Buffer, kvLength: number): number {
    this.reserve(kvLength + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = kvTag;
    buf[p++] = kvLength;
    for (let i = 0; i < k.length; i++) buf[p++] = k[i]!;
    buf[p++] = 0x12;
    buf[p++] = kvLength - k.length - 2;
    return p;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A hex ID (trace, span) as its bytes. */
  hex(id: string): void {
    const n = id.length >>> 1;
    this.varint(n);
    this.reserve(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < 2 * n; i += 2) buf[p++] = HEX_PAIRS[((id.charCodeAt(i) << 7) | id.charCodeAt(i + 1)) & 0x3fff]!;
    this.pos = p;
  }

  /** Starts a length-delimited field's content; one length byte is reserved. */
  begin(): number {
    this.reserve(1);
    return this.pos++;
  }

  /** Writes the length of the content started at `at`, moving the content if it needs more bytes. */
  end(at: number): void {
    const length = this.pos - at - 1;
    if (length < 128) {
      this.buf[at] = length;
      return;
    }
    let size = 1;
    for (let v = length; v > 127; v >>>= 7) size++;
    this.reserve(size - 1);
    this.buf.copyWithin(at + size, at + 1, this.pos);
    this.pos += size - 1;
    let v = length;
    let p = at;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[p] = v;
  }

  raw(from: Buffer, start: number, end: number): void {
    this.reserve(end - start);
    from.copy(this.buf, this.pos, start, end);
    this.pos += end - start;
  }
}

const KEY_CACHE_MAX = 1024;
const keyCache = new Map<string, Buffer>();

/**
 * The byte of every two-character hex pair (either case), at (first char code << 7 | second):
 * one lookup per byte of an id instead of two digit conversions, about 2.5× faster for the five
 * ids of a request's spans. Ids are ASCII (the propagator and id generator only make hex).
 */
const HEX_PAIRS = (() => {
  const pairs = new Uint8Array(1 << 14);
  const digits = '0123456789abcdefABCDEF';
  for (const hi of digits) for (const lo of digits) pairs[(hi.charCodeAt(0) << 7) | lo.charCodeAt(0)] = Number.parseInt(hi + lo, 16);
  return pairs;
})();

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

function writeAnyValue(w: ProtoWriter, value: unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, 2);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, 0);
      w.varint(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        w.tag(3, 0);
        w.varint(value);
      } else {
        w.tag(4, 1);
        w.double(value);
      }
      return;
    case 'object':
      break;
    default:
      return;
  }
  if (value instanceof Uint8Array) {
    w.tag(7, 2);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.tag(5, 2);
    const list = w.begin();
    for (const item of value) {
      w.tag(1, 2);
      const at = w.begin();
      writeAnyValue(w, item);
      w.end(at);
    }
    w.end(list);
  } else if (value !== null) {
    // A KeyValueList: its `values` (field 1) are KeyValues, as attributes are.
    w.tag(6, 2);
    const list = w.begin();
    writeAttributes(w, value as Attributes, 1);
    w.end(list);
  }
}

/** Each attribute as a KeyValue (key = 1, value = 2) in repeated field `field`. */
function writeAttributes(w: ProtoWriter, attributes: Attributes, field: number): void {
  const kvTag = (field << 3) | 2; // fields 1, 3, 4 and 9 here: every field up to 15 has a one-byte tag
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    const value = attributes[key];
    if (typeof value === 'string') {
      if (w.keyValueAscii(kvTag, key, value)) continue;
    } else if (typeof value === 'number' && value >= 0 && value < 2147483648 && (value | 0) === value) {
      if (w.keyValueSmallInt(kvTag, key, value)) continue;
    }
    w.tag(field, 2);
    const kv = w.begin();
    w.key(key);
    w.tag(2, 2);
    const at = w.begin();
    writeAnyValue(w, value);
    w.end(at);
    w.end(kv);
  }
}

/** Span flags: the W3C trace flags, plus whether the parent's remoteness is known, and it. */
function spanFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (traceFlags & 255) | 256 | (isRemote ? 512 : 0);
}

function writeEvent(w: ProtoWriter, event: TimedEvent): void {
  w.tag(11, 2);
  const at = w.begin();
  w.tag(1, 1);
  w.hrTime(event.time);
  w.tag(2, 2);
  w.string(event.name);
  if (event.attributes) writeAttributes(w, event.attributes, 3);
  w.tag(4, 0);
  w.varint(event.droppedAttributesCount || 0);
  w.end(at);
}

/** trace_id = 1, span_id = 2, trace_state = 3: the same fields in a Span and in a Link. */
function writeContext(w: ProtoWriter, sc: SpanContext): void {
  w.tag(1, 2);
  w.hex(sc.traceId);
  w.tag(2, 2);
  w.hex(sc.spanId);
  const traceState = sc.traceState?.serialize();
  if (traceState) {
    w.tag(3, 2);
    w.string(traceState);
  }
}

/** One `Span` message (ScopeSpans field 2), tag and length included. */
export function writeSpan(w: ProtoWriter, span: ReadableSpan): void {
  w.tag(2, 2);
  const at = w.begin();
  const ctx = span.spanContext();
  writeContext(w, ctx);
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    w.tag(4, 2);
    w.hex(parent.spanId);
  }
  w.tag(5, 2);
  w.string(span.name);
  const kind = span.kind == null ? 0 : span.kind + 1;
  if (kind !== 0) {
    w.tag(6, 0);
    w.varint(kind);
  }
  w.tag(7, 1);
  w.hrTime(span.startTime);
  w.tag(8, 1);
  w.hrTime(span.endTime);
  if (span.attributes) writeAttributes(w, span.attributes, 9);
  w.tag(10, 0);
  w.varint(span.droppedAttributesCount);
  const events = span.events;
  for (let i = 0; i < events.length; i++) writeEvent(w, events[i]!);
  w.tag(12, 0);
  w.varint(span.droppedEventsCount);
  for (const link of span.links) {
    w.tag(13, 2);
    const l = w.begin();
    const lc = link.context;
    writeContext(w, lc);
    if (link.attributes) writeAttributes(w, link.attributes, 4);
    w.tag(5, 0);
    w.varint(link.droppedAttributesCount || 0);
    w.tag(6, 5);
    w.fixed32(spanFlags(lc.traceFlags, lc.isRemote));
    w.end(l);
  }
  w.tag(14, 0);
  w.varint(span.droppedLinksCount);
  w.tag(15, 2);
  const status = w.begin();
  if (span.status.message) {
    w.tag(2, 2);
    w.string(span.status.message);
  }
  w.tag(3, 0);
  w.varint(span.status.code);
  w.end(status);
  w.tag(16, 5);
  w.fixed32(spanFlags(ctx.traceFlags, parent?.isRemote));
  w.end(at);
}

function writeResource(w: ProtoWriter, resource: Resource): void {
  w.tag(1, 2);
  const at = w.begin();
  writeAttributes(w, resource.attributes, 1);
  w.tag(2, 0);
  w.varint(0);
  w.end(at);
}

function writeScope(w: ProtoWriter, scope: InstrumentationScope & { attributes?: Attributes; droppedAttributesCount?: number }): void {
  w.tag(1, 2);
  const at = w.begin();
  w.tag(1, 2);
  w.string(scope.name);
  if (scope.version) {
    w.tag(2, 2);
    w.string(scope.version);
  }
  if (scope.attributes) writeAttributes(w, scope.attributes, 3);
  if (scope.droppedAttributesCount) {
    w.tag(4, 0);
    w.varint(scope.droppedAttributesCount);
  }
  w.end(at);
}

/** One encoded ExportTraceServiceRequest. */
export interface ProtoBatch {
  spans: number;
  bytes: Uint8Array;
}

/**
 * Writes spans as they end into OTLP `Span` messages, grouped at take() by resource and scope
 * (in the order first seen, as the SDK's serializer groups them). The span buffer is reused from
 * batch to batch; each taken request is a buffer of its own.
 */
export class OtlpProtoEncoder {
  private readonly spansOut = new ProtoWriter(64 * 1024);
  /** Byte ranges [start, end, start, end, …] of the open batch's spans, per resource and scope. */
  private groups = new Map<Resource, Map<InstrumentationScope, number[]>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(span: ReadableSpan): void {
    let scopes = this.groups.get(span.resource);
    if (scopes === undefined) this.groups.set(span.resource, (scopes = new Map()));
    let ranges = scopes.get(span.instrumentationScope);
    if (ranges === undefined) scopes.set(span.instrumentationScope, (ranges = []));
    const start = this.spansOut.pos;
    writeSpan(this.spansOut, span);
    // Spans of one resource and scope usually follow each other: one range, copied at once by take().
    const last = ranges.length - 1;
    if (last > 0 && ranges[last] === start) ranges[last] = this.spansOut.pos;
    else ranges.push(start, this.spansOut.pos);
    this.count++;
  }

  take(): ProtoBatch | undefined {
    if (this.count === 0) return undefined;
    const from = this.spansOut;
    const w = new ProtoWriter(from.pos + 1024);
    for (const [resource, scopes] of this.groups) {
      w.tag(1, 2);
      const rs = w.begin();
      writeResource(w, resource);
      for (const [scope, ranges] of scopes) {
        w.tag(2, 2);
        const ss = w.begin();
        writeScope(w, scope);
        for (let i = 0; i < ranges.length; i += 2) w.raw(from.buf, ranges[i]!, ranges[i + 1]!);
        if (scope.schemaUrl) {
          w.tag(3, 2);
          w.string(scope.schemaUrl);
        }
        w.end(ss);
      }
      if (resource.schemaUrl) {
        w.tag(3, 2);
        w.string(resource.schemaUrl);
      }
      w.end(rs);
    }
    const batch = { spans: this.count, bytes: w.buf.subarray(0, w.pos) };
    from.pos = 0;
    this.groups = new Map();
    this.count = 0;
    return batch;
  }
}

/** The OTLP exporter's transport, fed bytes that are already the request body. */
const preEncoded: ISerializer<ProtoBatch, ReturnType<typeof ProtobufTraceSerializer.deserializeResponse>> = {
  serializeRequest: (batch) => batch.bytes,
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

class OtlpProtoChannel implements SpanChannel<ProtoBatch> {
  private readonly encoder = new OtlpProtoEncoder();
  private readonly delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
    preEncoded,
    'otlp_http_span_exporter',
    { name: 'span', countItems: (batch: ProtoBatch) => batch.spans },
    undefined,
  );

  get size(): number {
    return this.encoder.size;
  }

  prepare(): void {}

  add(span: ReadableSpan): void {
    this.encoder.add(span);
  }

  take(): ProtoBatch | undefined {
    return this.encoder.take();
  }

  send(batch: ProtoBatch, done: (result: ExportResult) => void): void {
    this.delegate.export(batch, done);
  }

  stop(): Promise<void> {
    return this.delegate.shutdown();
  }
}

/** OTLP http/protobuf export: spans encoded on the request thread as they end, sent in batches. */
export class OtlpProtoExportProcessor extends BatchedExportProcessor<ProtoBatch> {
  constructor(options: MonitorOptions) {
    super(new OtlpProtoChannel(), options);
  }
}
