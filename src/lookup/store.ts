import { SpanKind, SpanStatusCode, metrics, type Attributes, type HrTime } from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { SpanData, SpanKindName, SpanStatusName } from './summary.js';

export interface StoreLimits {
  /** At most this many spans are kept; 0 turns the store off. */
  maxSpans: number;
  /** At most this many (estimated) bytes are kept; 0 turns the store off. */
  maxBytes: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = { maxSpans: 20_000, maxBytes: 32 * 1024 * 1024 };

// Rough retained-heap costs in V8: the span object with its context, times and arrays; one
// attribute slot; one event; one link. Strings are counted by length on top. Calibrated on the
// gateway's own spans (about 1.5 KB each, estimate within a few percent, on the high side);
// every term grows with what the span holds, so the byte cap bounds memory even for huge
// client-supplied attribute values.
const SPAN_BYTES = 600;
const ATTRIBUTE_BYTES = 48;
const EVENT_BYTES = 160;
const LINK_BYTES = 120;

function attributeBytes(attributes: Attributes): number {
  let bytes = 0;
  // for-in: no key array is allocated on the span-recording path.
  for (const key in attributes) {
    const value = attributes[key];
    bytes += ATTRIBUTE_BYTES + key.length;
    if (typeof value === 'string') bytes += value.length;
    else if (Array.isArray(value)) for (const v of value) bytes += typeof v === 'string' ? v.length + 16 : 16;
    else bytes += 8;
  }
  return bytes;
}

export function estimateSpanBytes(span: ReadableSpan): number {
  let bytes = SPAN_BYTES + span.name.length + attributeBytes(span.attributes) + span.links.length * LINK_BYTES;
  const events = span.events;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    bytes += EVENT_BYTES + event.name.length + (event.attributes ? attributeBytes(event.attributes) : 0);
  }
  return bytes;
}

const KIND_NAMES: Record<number, SpanKindName> = {
  [SpanKind.INTERNAL]: 'INTERNAL',
  [SpanKind.SERVER]: 'SERVER',
  [SpanKind.CLIENT]: 'CLIENT',
  [SpanKind.PRODUCER]: 'PRODUCER',
  [SpanKind.CONSUMER]: 'CONSUMER',
};
const STATUS_NAMES: Record<number, SpanStatusName> = { [SpanStatusCode.UNSET]: 'UNSET', [SpanStatusCode.OK]: 'OK', [SpanStatusCode.ERROR]: 'ERROR' };

const hrMs = (t: HrTime): number => t[0] * 1e3 + t[1] / 1e6;

export function spanDataFromSdk(span: ReadableSpan): SpanData {
  const sc = span.spanContext();
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    service: String(span.resource.attributes['service.name'] ?? 'unknown_service'),
    name: span.name,
    kind: KIND_NAMES[span.kind] ?? 'UNSPECIFIED',
    startMs: hrMs(span.startTime),
    durationMs: hrMs(span.duration),
    status: STATUS_NAMES[span.status.code] ?? 'UNSET',
    statusMessage: span.status.message || undefined,
    attributes: span.attributes,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes ?? {} })),
  };
}

/**
 * The gateway's own recent spans, for trace lookup without Tempo: a ring buffer capped by span
 * count and by estimated bytes, oldest evicted first. It is a SpanProcessor, so onEnd runs for
 * every recorded span on the request path: it keeps a reference to the ended span (no copy, no
 * index) and does O(attributes) arithmetic. Lookups scan the ring instead; they are rare admin
 * requests, and a scan of 20,000 references takes well under a millisecond.
 */
export class TraceStore implements SpanProcessor {
  private slots: Array<ReadableSpan | undefined> = [];
  private sizes = new Uint32Array(0);
  /** Index of the oldest span. */
  private head = 0;
  private count = 0;
  private bytes = 0;
  private evictedTotal = 0;
  private limits: StoreLimits = { maxSpans: 0, maxBytes: 0 };

  constructor(limits: StoreLimits = DEFAULT_STORE_LIMITS) {
    this.configure(limits);
  }

  /** Applies new limits, keeping the newest spans that fit. */
  configure(limits: StoreLimits): void {
    const kept = this.newestFirst().reverse();
    this.limits = { maxSpans: Math.max(0, Math.floor(limits.maxSpans)), maxBytes: Math.max(0, Math.floor(limits.maxBytes)) };
    this.slots = new Array<ReadableSpan | undefined>(this.limits.maxSpans);
    this.sizes = new Uint32Array(this.limits.maxSpans);
    this.head = this.count = this.bytes = 0;
    for (const span of kept) this.onEnd(span);
  }

  get enabled(): boolean {
    return this.limits.maxSpans > 0 && this.limits.maxBytes > 0;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    const { maxSpans, maxBytes } = this.limits;
    if (maxSpans === 0) return;
    const size = estimateSpanBytes(span);
    if (size > maxBytes) {
      this.evictedTotal++;
      return;
    }
    while (this.count === maxSpans || this.bytes + size > maxBytes) this.evictOldest();
    let tail = this.head + this.count;
    if (tail >= maxSpans) tail -= maxSpans;
    this.slots[tail] = span;
    this.sizes[tail] = size;
    this.count++;
    this.bytes += size;
  }

  private evictOldest(): void {
    const i = this.head;
    this.bytes -= this.sizes[i]!;
    this.slots[i] = undefined;
    this.head = i + 1 === this.limits.maxSpans ? 0 : i + 1;
    this.count--;
    this.evictedTotal++;
  }

  private newestFirst(): ReadableSpan[] {
    const out: ReadableSpan[] = [];
    const cap = this.limits.maxSpans;
    for (let n = this.count - 1; n >= 0; n--) out.push(this.slots[(this.head + n) % cap]!);
    return out;
  }

  /** Every stored span of the trace. */
  spansOf(traceId: string): SpanData[] {
    const out: SpanData[] = [];
    const cap = this.limits.maxSpans;
    for (let n = 0; n < this.count; n++) {
      const span = this.slots[(this.head + n) % cap]!;
      if (span.spanContext().traceId === traceId) out.push(spanDataFromSdk(span));
    }
    return out;
  }

  /** Trace IDs whose gateway SERVER span carries this request ID, newest first. */
  traceIdsForRequest(requestId: string): string[] {
    const ids: string[] = [];
    for (const span of this.newestFirst()) {
      if (span.kind !== SpanKind.SERVER || span.attributes['gateway.request_id'] !== requestId) continue;
      const traceId = span.spanContext().traceId;
      if (!ids.includes(traceId)) ids.push(traceId);
    }
    return ids;
  }

  stats(): { spans: number; bytes: number; evicted: number; maxSpans: number; maxBytes: number; oldestStartMs: number | undefined } {
    const oldest = this.count > 0 ? this.slots[this.head] : undefined;
    return {
      spans: this.count,
      bytes: this.bytes,
      evicted: this.evictedTotal,
      ...this.limits,
      oldestStartMs: oldest ? hrMs(oldest.startTime) : undefined,
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
      .createObservableGauge('gateway.trace_store.bytes', { unit: 'By', description: 'Estimated bytes held by the embedded trace-lookup store.' })
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
