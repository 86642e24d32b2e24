import { metrics } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { ProtoWriter, writeSpan } from '../telemetry/otlp-proto.js';
import type { SpanData, SpanKindName, SpanStatusName } from './summary.js';

export interface StoreLimits {
  /** At most this many spans are kept; 0 turns the store off. */
  maxSpans: number;
  /** At most this many bytes of encoded spans are kept; 0 turns the store off. */
  maxBytes: number;
}

export interface StoreStats {
  spans: number;
  bytes: number;
  evicted: number;
  maxSpans: number;
  maxBytes: number;
  oldestStartMs: number | undefined;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = { maxSpans: 20_000, maxBytes: 32 * 1024 * 1024 };

/** Indexed by OTLP SpanKind (the SDK's kind + 1). */
const KIND_NAMES: SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_NAMES: SpanStatusName[] = ['UNSET', 'OK', 'ERROR'];
const OTLP_KIND_SERVER = 2;
const FIRST_BUFFER_BYTES = 256 * 1024;

/** Reads one OTLP message's fields, from `pos` up to the end its caller knows. */
class ProtoReader {
  pos: number;
  /** Where the message being read ends. */
  end = 0;

  constructor(
    readonly buf: Buffer,
    pos: number,
  ) {
    this.pos = pos;
  }

  varint(): number {
    const buf = this.buf;
    const start = this.pos;
    let result = 0;
    let scale = 1;
    let b: number;
    do {
      b = buf[this.pos++]!;
      result += (b & 127) * scale;
      scale *= 128;
    } while (b >= 128);
    if (scale <= 2 ** 49) return result;
    // Beyond 49 bits a double is not exact; int64 varints are two's complement (negatives take ten bytes).
    let big = 0n;
    for (let i = this.pos - 1; i >= start; i--) big = (big << 7n) | BigInt(buf[i]! & 127);
    return Number(BigInt.asIntN(64, big));
  }

  fixed64(): number {
    const v = this.buf.readUInt32LE(this.pos) + this.buf.readUInt32LE(this.pos + 4) * 4294967296;
    this.pos += 8;
    return v;
  }

  /** Skips over a length-delimited field and returns where its content starts and ends. */
  span(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    this.pos += n;
    return [start, start + n];
  }

  string(): string {
    const [start, end] = this.span();
    return this.buf.toString('utf8', start, end);
  }

  hex(): string {
    const [start, end] = this.span();
    return this.buf.toString('hex', start, end);
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.span();
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`unexpected protobuf wire type ${wireType}`);
  }

  /** An AnyValue ending at `end`. */
  anyValue(end: number): unknown {
    let value: unknown = null;
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag) {
        case 0x0a: // string_value
          value = this.string();
          break;
        case 0x10: // bool_value
          value = this.varint() !== 0;
          break;
        case 0x18: // int_value
          value = this.varint();
          break;
        case 0x21: // double_value
          value = this.buf.readDoubleLE(this.pos);
          this.pos += 8;
          break;
        case 0x2a: {
          // array_value: ArrayValue { repeated AnyValue values = 1 }
          const [start, listEnd] = this.span();
          const list: unknown[] = [];
          this.pos = start;
          while (this.pos < listEnd) {
            const itemTag = this.varint();
            if (itemTag !== 0x0a) {
              this.skip(itemTag & 7);
              continue;
            }
            const [itemStart, itemEnd] = this.span();
            this.pos = itemStart;
            list.push(this.anyValue(itemEnd));
          }
          value = list;
          break;
        }
        case 0x32: {
          // kvlist_value: KeyValueList { repeated KeyValue values = 1 }
          const [start, listEnd] = this.span();
          const map: Record<string, unknown> = {};
          this.pos = start;
          while (this.pos < listEnd) {
            const itemTag = this.varint();
            if (itemTag === 0x0a) this.keyValueInto(map);
            else this.skip(itemTag & 7);
          }
          value = map;
          break;
        }
        case 0x3a: {
          // bytes_value
          const [start, bytesEnd] = this.span();
          value = new Uint8Array(this.buf.subarray(start, bytesEnd));
          break;
        }
        default:
          this.skip(tag & 7);
      }
    }
    return value;
  }

  /** Reads a length-delimited KeyValue (its tag already read) into `into`. */
  keyValueInto(into: Record<string, unknown>): void {
    const [start, end] = this.span();
    this.pos = start;
    let key = '';
    let value: unknown = null;
    while (this.pos < end) {
      const tag = this.varint();
      if (tag === 0x0a) key = this.string();
      else if (tag === 0x12) {
        const [valueStart, valueEnd] = this.span();
        this.pos = valueStart;
        value = this.anyValue(valueEnd);
      } else this.skip(tag & 7);
    }
    into[key] = value;
  }
}

/** Where the Span message of a stored record starts and ends (records keep ScopeSpans' tag and length). */
function spanBounds(buf: Buffer, at: number): ProtoReader {
  const r = new ProtoReader(buf, at);
  r.varint();
  const [start, end] = r.span();
  r.pos = start;
  r.end = end;
  return r;
}

function decodeSpan(buf: Buffer, at: number, service: string): SpanData {
  const r = spanBounds(buf, at);
  const attributes: Record<string, unknown> = {};
  const events: Array<{ name: string; attributes: Record<string, unknown> }> = [];
  const data: SpanData = {
    traceId: '',
    spanId: '',
    parentSpanId: undefined,
    service,
    name: '',
    kind: 'UNSPECIFIED',
    startMs: 0,
    durationMs: 0,
    status: 'UNSET',
    statusMessage: undefined,
    attributes,
    events,
  };
  let startNs = 0;
  let endNs = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a:
        data.traceId = r.hex();
        break;
      case 0x12:
        data.spanId = r.hex();
        break;
      case 0x22:
        data.parentSpanId = r.hex();
        break;
      case 0x2a:
        data.name = r.string();
        break;
      case 0x30:
        data.kind = KIND_NAMES[r.varint()] ?? 'UNSPECIFIED';
        break;
      case 0x39:
        startNs = r.fixed64();
        break;
      case 0x41:
        endNs = r.fixed64();
        break;
      case 0x4a:
        r.keyValueInto(attributes);
        break;
      case 0x5a: {
        const [start, end] = r.span();
        r.pos = start;
        const event = { name: '', attributes: {} as Record<string, unknown> };
        while (r.pos < end) {
          const eventTag = r.varint();
          if (eventTag === 0x12) event.name = r.string();
          else if (eventTag === 0x1a) r.keyValueInto(event.attributes);
          else r.skip(eventTag & 7);
        }
        events.push(event);
        break;
      }
      case 0x7a: {
        const [start, end] = r.span();
        r.pos = start;
        while (r.pos < end) {
          const statusTag = r.varint();
          if (statusTag === 0x12) data.statusMessage = r.string() || undefined;
          else if (statusTag === 0x18) data.status = STATUS_NAMES[r.varint()] ?? 'UNSET';
          else r.skip(statusTag & 7);
        }
        break;
      }
      default:
        r.skip(tag & 7);
    }
  }
  data.startMs = startNs / 1e6;
  data.durationMs = (endNs - startNs) / 1e6;
  return data;
}

/** The value of one attribute of a stored span (undefined when absent), without decoding the rest. */
function attributeOf(buf: Buffer, at: number, key: string): unknown {
  const r = spanBounds(buf, at);
  const found: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag !== 0x4a) {
      r.skip(tag & 7);
      continue;
    }
    r.keyValueInto(found);
    if (key in found) return found[key];
  }
  return undefined;
}

/** The start time of a stored span, in epoch milliseconds. */
function startMsOf(buf: Buffer, at: number): number {
  const r = spanBounds(buf, at);
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x39) return r.fixed64() / 1e6;
    r.skip(tag & 7);
  }
  return 0;
}

/**
 * The gateway's own recent spans, for trace lookup without Tempo. Each ended span is kept as its
 * OTLP protobuf bytes (the export's encoder) in one ring buffer outside the JS heap, oldest
 * evicted first, capped by span count and by bytes. Nothing of a stored span stays on the heap,
 * so keeping thousands of recent spans costs the garbage collector nothing (holding the span
 * objects made every span outlive the young generation). Lookups decode what they scan; they
 * are rare admin requests.
 */
export class TraceStore implements SpanProcessor {
  private limits: StoreLimits = { maxSpans: 0, maxBytes: 0 };
  private buf = Buffer.alloc(0);
  /** Per slot of the ring of records: byte offset, length, service name index, OTLP kind. */
  private starts = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private serviceOf = new Uint16Array(0);
  private kinds = new Uint8Array(0);
  /** Slot of the oldest record. */
  private head = 0;
  private count = 0;
  private bytes = 0;
  /** Byte offset just past the newest record. */
  private tail = 0;
  private evictedTotal = 0;
  private readonly scratch = new ProtoWriter(4096);
  private readonly services: string[] = [];
  private readonly serviceIndex = new Map<Resource, number>();

  constructor(limits: StoreLimits = DEFAULT_STORE_LIMITS) {
    this.configure(limits);
  }

  /** Applies new limits, keeping the newest spans that fit. */
  configure(limits: StoreLimits): void {
    const maxSpans = Math.max(0, Math.floor(limits.maxSpans));
    const maxBytes = Math.max(0, Math.floor(limits.maxBytes));
    // Newest first, as long as they fit the new limits.
    const kept: Array<{ bytes: Buffer; service: number; kind: number }> = [];
    let keptBytes = 0;
    for (let n = this.count - 1; n >= 0 && kept.length < maxSpans; n--) {
      const slot = this.slot(n);
      const length = this.lengths[slot]!;
      if (keptBytes + length > maxBytes) break;
      keptBytes += length;
      kept.push({ bytes: Buffer.from(this.buf.subarray(this.starts[slot]!, this.starts[slot]! + length)), service: this.serviceOf[slot]!, kind: this.kinds[slot]! });
    }
    this.limits = { maxSpans, maxBytes };
    this.buf = Buffer.alloc(0);
    this.starts = new Uint32Array(maxSpans);
    this.lengths = new Uint32Array(maxSpans);
    this.serviceOf = new Uint16Array(maxSpans);
    this.kinds = new Uint8Array(maxSpans);
    this.head = this.count = this.bytes = this.tail = 0;
    for (let i = kept.length - 1; i >= 0; i--) this.insert(kept[i]!.bytes, kept[i]!.bytes.length, kept[i]!.service, kept[i]!.kind);
  }

  get enabled(): boolean {
    return this.limits.maxSpans > 0 && this.limits.maxBytes > 0;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (!this.enabled) return;
    const w = this.scratch;
    w.pos = 0;
    writeSpan(w, span);
    this.insert(w.buf, w.pos, this.serviceNumber(span.resource), span.kind + 1);
  }

  private serviceNumber(resource: Resource): number {
    let index = this.serviceIndex.get(resource);
    if (index === undefined) {
      const name = String(resource.attributes['service.name'] ?? 'unknown_service');
      index = this.services.indexOf(name);
      if (index === -1) index = this.services.push(name) - 1;
      this.serviceIndex.set(resource, index);
    }
    return index;
  }

  /** The ring slot of the n-th oldest record. */
  private slot(n: number): number {
    const i = this.head + n;
    return i >= this.limits.maxSpans ? i - this.limits.maxSpans : i;
  }

  private insert(from: Buffer, length: number, service: number, kind: number): void {
    const { maxSpans, maxBytes } = this.limits;
    if (length > maxBytes) {
      this.evictedTotal++;
      return;
    }
    while (this.count === maxSpans || this.bytes + length > maxBytes) this.evictOldest();
    const at = this.place(length);
    from.copy(this.buf, at, 0, length);
    const slot = this.slot(this.count);
    this.starts[slot] = at;
    this.lengths[slot] = length;
    this.serviceOf[slot] = service;
    this.kinds[slot] = kind;
    this.count++;
    this.bytes += length;
    this.tail = at + length;
  }

  /** Finds `length` contiguous free bytes, growing the buffer (up to maxBytes) or evicting. */
  private place(length: number): number {
    for (;;) {
      if (this.count === 0) {
        if (this.buf.length < length) this.grow(length);
        return 0;
      }
      const oldest = this.starts[this.head]!;
      if (this.tail > oldest) {
        // Records run from `oldest` to `tail`; free space is after them and before them.
        if (this.buf.length - this.tail >= length) return this.tail;
        if (oldest >= length) return 0;
      } else if (oldest - this.tail >= length) {
        // Wrapped: the free space lies between the newest and the oldest record.
        return this.tail;
      }
      if (this.buf.length < this.limits.maxBytes) this.grow(this.bytes + length);
      else this.evictOldest();
    }
  }

  /** A larger buffer (at least `need` bytes), with the records copied into it oldest first. */
  private grow(need: number): void {
    const size = Math.min(this.limits.maxBytes, Math.max(need, FIRST_BUFFER_BYTES, this.buf.length * 2));
    const grown = Buffer.allocUnsafeSlow(size);
    let at = 0;
    for (let n = 0; n < this.count; n++) {
      const slot = this.slot(n);
      const start = this.starts[slot]!;
      this.buf.copy(grown, at, start, start + this.lengths[slot]!);
      this.starts[slot] = at;
      at += this.lengths[slot]!;
    }
    this.buf = grown;
    this.tail = at;
  }

  private evictOldest(): void {
    this.bytes -= this.lengths[this.head]!;
    this.head = this.slot(1);
    this.count--;
    this.evictedTotal++;
    if (this.count === 0) this.head = this.tail = 0;
  }

  /** Every stored span of the trace, oldest first. */
  spansOf(traceId: string): SpanData[] {
    const out: SpanData[] = [];
    const wanted = Buffer.from(traceId, 'hex');
    if (wanted.length !== 16) return out;
    for (let n = 0; n < this.count; n++) {
      const slot = this.slot(n);
      const at = this.starts[slot]!;
      const r = spanBounds(this.buf, at);
      // trace_id is the Span message's first field: tag 0x0a, length 16.
      if (this.buf[r.pos] !== 0x0a || this.buf.compare(wanted, 0, 16, r.pos + 2, r.pos + 18) !== 0) continue;
      out.push(decodeSpan(this.buf, at, this.services[this.serviceOf[slot]!]!));
    }
    return out;
  }

  /** Trace IDs whose gateway SERVER span carries this request ID, newest first. */
  traceIdsForRequest(requestId: string): string[] {
    const ids: string[] = [];
    for (let n = this.count - 1; n >= 0; n--) {
      const slot = this.slot(n);
      if (this.kinds[slot] !== OTLP_KIND_SERVER) continue;
      const at = this.starts[slot]!;
      if (attributeOf(this.buf, at, 'gateway.request_id') !== requestId) continue;
      const r = spanBounds(this.buf, at);
      const traceId = this.buf.toString('hex', r.pos + 2, r.pos + 18);
      if (!ids.includes(traceId)) ids.push(traceId);
    }
    return ids;
  }

  stats(): StoreStats {
    return {
      spans: this.count,
      bytes: this.bytes,
      evicted: this.evictedTotal,
      ...this.limits,
      oldestStartMs: this.count > 0 ? startMsOf(this.buf, this.starts[this.head]!) : undefined,
    };
  }

  /** Exports the store's size; called once the SDK's meter provider exists. */
  bindMetrics(): void {
    const meter = metrics.getMeter('tracing-gateway');
    const none = {};
    meter
      .createObservableGauge('gateway.trace_store.spans', { unit: '{span}', description: 'Spans held by the embedded trace-lookup store.' })
      .addCallback((r) => r.observe(this.count, none));
    meter
      .createObservableGauge('gateway.trace_store.bytes', { unit: 'By', description: 'Bytes of encoded spans held by the embedded trace-lookup store.' })
      .addCallback((r) => r.observe(this.bytes, none));
    meter
      .createObservableCounter('gateway.trace_store.evicted', { unit: '{span}', description: 'Spans evicted from (or too large for) the embedded trace-lookup store.' })
      .addCallback((r) => r.observe(this.evictedTotal, none));
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
