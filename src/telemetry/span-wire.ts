// Finished spans as bytes in one ArrayBuffer per batch, for handing a batch to the export thread.
// The buffer is transferred, not copied, and lives outside the JS heap: spans leave the request
// thread without a structured clone, and nothing of a batch waits in the young generation to be
// promoted (a flat JS array of the same data grew into the large-object space and kept every
// string it held alive until the batch was full).
import type { Attributes, AttributeValue, HrTime, Link, SpanContext, SpanKind, SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { TraceState, hrTimeDuration } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';

/** One batch: the span bytes plus any resource, scope or attribute key not sent on this channel before. */
export interface WireBatch {
  /** [index, attributes, schemaUrl] for resources first seen in this batch. */
  resources: Array<[number, Attributes, string | undefined]>;
  /** [index, name, version, schemaUrl] for instrumentation scopes first seen in this batch. */
  scopes: Array<[number, string, string | undefined, string | undefined]>;
  /** [index, key] for attribute keys first used in this batch. */
  keys: Array<[number, string]>;
  spans: number;
  /** The encoded spans: bytes [0, length) of this buffer (postMessage can transfer it). */
  bytes: ArrayBuffer;
  length: number;
}

/** isRemote is three-valued on the wire too: OTLP's span flags say whether it was known at all. */
function remoteCode(isRemote: boolean | undefined): number {
  return isRemote === undefined ? 2 : isRemote ? 1 : 0;
}

function remoteValue(code: number): boolean | undefined {
  return code === 2 ? undefined : code === 1;
}

// Value tags. Attribute values are whatever the SDK accepted: primitives, arrays, plain objects
// (AnyValue maps), byte arrays and null.
const T_STRING = 1;
const T_NUMBER = 2;
const T_TRUE = 3;
const T_FALSE = 4;
const T_ARRAY = 5;
const T_MAP = 6;
const T_BYTES = 7;
const T_NULL = 8;
const T_UNDEFINED = 9;

/** Attribute keys are sent once per channel and referred to by index; past this many, inline. */
const MAX_KEYS = 4096;
const INLINE_KEY = 0xffff;
const MIN_BATCH_BYTES = 16 * 1024;
/** Strings up to this length are tried as ASCII byte by byte (cheaper than a native call). */
const ASCII_TRY_LENGTH = 96;

/**
 * Encodes spans for one channel, one span at a time (each as it ends, so the span object itself
 * can be collected young). Resources, scopes and attribute keys are defined once per channel and
 * referred to by index afterwards; the decoder on the other side keeps the same tables. After the
 * receiving side was replaced, `forgetSent()` makes the next batches define them again.
 *
 * Layout per span (u8/u32/f64 little-endian, strings as u32 byte length + UTF-8): name, kind u8,
 * traceId, spanId, traceFlags u8, traceState, parentSpanId, parent isRemote u8 (0 false, 1 true,
 * 2 unknown, 3 no parent), start s f64, start ns f64, end s f64, end ns f64, status code u8,
 * status message (u8 0 absent / 1 + string), dropped attributes/events/links u32, resource u32,
 * scope u32, attributes (u32 count, then u16 key index (0xffff: inline string) and a tagged
 * value), events (u32 count, then name, time s, ns, dropped u32, attributes), links (u32 count,
 * then traceId, spanId, traceFlags u8, traceState, isRemote u8, dropped u32, attributes).
 */
export class SpanWireEncoder {
  private readonly resources = new Map<Resource, number>();
  private readonly scopes = new Map<InstrumentationScope, number>();
  private readonly keyIndex = new Map<string, number>();
  private readonly resourceDefs: WireBatch['resources'] = [];
  private readonly scopeDefs: WireBatch['scopes'] = [];
  private readonly keyDefs: WireBatch['keys'] = [];
  private readonly sentResources = new Set<number>();
  private readonly sentScopes = new Set<number>();
  private readonly sentKeys = new Set<number>();
  private batch: WireBatch | undefined;
  private buf = Buffer.alloc(0);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  /** Size of the last batch taken: the next buffer starts big enough to hold one like it. */
  private lastBytes = MIN_BATCH_BYTES;

  /** Spans in the batch being built. */
  get size(): number {
    return this.batch?.spans ?? 0;
  }

  /** The batch built so far (undefined when empty); the next add() starts a new one. */
  take(): WireBatch | undefined {
    const batch = this.batch;
    if (batch === undefined) return undefined;
    this.batch = undefined;
    batch.bytes = this.buf.buffer as ArrayBuffer;
    batch.length = this.pos;
    this.lastBytes = Math.max(MIN_BATCH_BYTES, this.pos);
    this.buf = Buffer.alloc(0);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
    return batch;
  }

  /** Encodes `spans` as one batch (what an exporter's export() receives). */
  encode(spans: readonly ReadableSpan[]): WireBatch {
    for (const span of spans) this.add(span);
    return this.take() ?? { resources: [], scopes: [], keys: [], spans: 0, bytes: new ArrayBuffer(0), length: 0 };
  }

  forgetSent(): void {
    this.sentResources.clear();
    this.sentScopes.clear();
    this.sentKeys.clear();
    if (this.batch === undefined) return;
    // The open batch may refer to definitions only the previous receiver had.
    for (const def of this.resourceDefs) this.define(def[0], def, this.sentResources, this.batch.resources);
    for (const def of this.scopeDefs) this.define(def[0], def, this.sentScopes, this.batch.scopes);
    for (const def of this.keyDefs) this.define(def[0], def, this.sentKeys, this.batch.keys);
  }

  /** Puts a definition into the open batch and notes that the receiver has it. */
  private define<T>(index: number, def: T, sent: Set<number>, into: T[]): void {
    sent.add(index);
    into.push(def);
  }

  /** Makes room for `bytes` more; the buffer is owned by the open batch until take(). */
  private reserve(bytes: number): void {
    const need = this.pos + bytes;
    if (need <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(need, this.buf.length * 2, Math.ceil(this.lastBytes * 1.25)));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.length);
  }

  private u8(v: number): void {
    this.reserve(1);
    this.buf[this.pos++] = v;
  }

  private u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  private f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  private str(s: string): void {
    const n = s.length;
    this.reserve(4 + n * 3);
    const buf = this.buf;
    const at = this.pos + 4;
    if (n <= ASCII_TRY_LENGTH) {
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + i] = c;
      }
      if (i === n) {
        this.view.setUint32(this.pos, n, true);
        this.pos = at + n;
        return;
      }
    }
    const written = buf.write(s, at, 'utf8');
    this.view.setUint32(this.pos, written, true);
    this.pos = at + written;
  }

  private value(v: unknown): void {
    switch (typeof v) {
      case 'string':
        this.u8(T_STRING);
        this.str(v);
        return;
      case 'number':
        this.u8(T_NUMBER);
        this.f64(v);
        return;
      case 'boolean':
        this.u8(v ? T_TRUE : T_FALSE);
        return;
      case 'undefined':
        this.u8(T_UNDEFINED);
        return;
      case 'object':
        break;
      default:
        // The SDK drops other types before a span holds them; keep the slot decodable anyway.
        this.u8(T_UNDEFINED);
        return;
    }
    if (v === null) {
      this.u8(T_NULL);
    } else if (v instanceof Uint8Array) {
      this.u8(T_BYTES);
      this.u32(v.length);
      this.reserve(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    } else if (Array.isArray(v)) {
      this.u8(T_ARRAY);
      this.u32(v.length);
      for (const item of v) this.value(item);
    } else {
      const map = v as Record<string, unknown>;
      this.u8(T_MAP);
      const at = this.pos;
      this.u32(0);
      let n = 0;
      for (const key in map) {
        this.str(key);
        this.value(map[key]);
        n++;
      }
      this.view.setUint32(at, n, true);
    }
  }

  private attributes(attributes: Attributes | undefined): void {
    const at = this.pos;
    this.u32(0);
    if (attributes === undefined) return;
    let n = 0;
    for (const key in attributes) {
      const value = attributes[key];
      if (value === undefined) continue;
      this.key(key);
      this.value(value);
      n++;
    }
    this.view.setUint32(at, n, true);
  }

  private key(key: string): void {
    let index = this.keyIndex.get(key);
    if (index === undefined && this.keyDefs.length < MAX_KEYS) {
      index = this.keyDefs.length;
      this.keyIndex.set(key, index);
      this.keyDefs.push([index, key]);
    }
    this.reserve(2);
    if (index === undefined) {
      this.view.setUint16(this.pos, INLINE_KEY, true);
      this.pos += 2;
      this.str(key);
      return;
    }
    if (!this.sentKeys.has(index)) this.define(index, this.keyDefs[index]!, this.sentKeys, this.batch!.keys);
    this.view.setUint16(this.pos, index, true);
    this.pos += 2;
  }

  add(span: ReadableSpan): void {
    const batch = (this.batch ??= { resources: [], scopes: [], keys: [], spans: 0, bytes: new ArrayBuffer(0), length: 0 });
    let resource = this.resources.get(span.resource);
    if (resource === undefined) {
      this.resources.set(span.resource, (resource = this.resourceDefs.length));
      this.resourceDefs.push([resource, { ...span.resource.attributes }, span.resource.schemaUrl]);
    }
    if (!this.sentResources.has(resource)) this.define(resource, this.resourceDefs[resource]!, this.sentResources, batch.resources);
    const scopeRef = span.instrumentationScope;
    let scope = this.scopes.get(scopeRef);
    if (scope === undefined) {
      this.scopes.set(scopeRef, (scope = this.scopeDefs.length));
      this.scopeDefs.push([scope, scopeRef.name, scopeRef.version, scopeRef.schemaUrl]);
    }
    if (!this.sentScopes.has(scope)) this.define(scope, this.scopeDefs[scope]!, this.sentScopes, batch.scopes);
    batch.spans++;
    const sc = span.spanContext();
    const parent = span.parentSpanContext;
    const status = span.status;
    this.str(span.name);
    this.u8(span.kind);
    this.str(sc.traceId);
    this.str(sc.spanId);
    this.u8(sc.traceFlags);
    this.str(sc.traceState?.serialize() ?? '');
    this.str(parent?.spanId ?? '');
    this.u8(parent === undefined ? 3 : remoteCode(parent.isRemote));
    this.f64(span.startTime[0]);
    this.f64(span.startTime[1]);
    this.f64(span.endTime[0]);
    this.f64(span.endTime[1]);
    this.u8(status.code);
    if (status.message === undefined) this.u8(0);
    else {
      this.u8(1);
      this.str(status.message);
    }
    this.u32(span.droppedAttributesCount);
    this.u32(span.droppedEventsCount);
    this.u32(span.droppedLinksCount);
    this.u32(resource);
    this.u32(scope);
    this.attributes(span.attributes);
    this.u32(span.events.length);
    for (const event of span.events) {
      this.str(event.name);
      this.f64(event.time[0]);
      this.f64(event.time[1]);
      this.u32(event.droppedAttributesCount ?? 0);
      this.attributes(event.attributes);
    }
    this.u32(span.links.length);
    for (const link of span.links) {
      const lc = link.context;
      this.str(lc.traceId);
      this.str(lc.spanId);
      this.u8(lc.traceFlags);
      this.str(lc.traceState?.serialize() ?? '');
      this.u8(remoteCode(lc.isRemote));
      this.u32(link.droppedAttributesCount ?? 0);
      this.attributes(link.attributes);
    }
  }
}

/** A decoded span: what the OTLP serialisers read from a ReadableSpan, nothing more. */
class WireSpan implements ReadableSpan {
  name!: string;
  kind!: SpanKind;
  parentSpanContext: SpanContext | undefined;
  startTime!: HrTime;
  endTime!: HrTime;
  status!: SpanStatus;
  attributes!: Attributes;
  links: Link[] = [];
  events: TimedEvent[] = [];
  duration: HrTime = [0, 0];
  ended = true;
  resource!: Resource;
  instrumentationScope!: InstrumentationScope;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  context!: SpanContext;
  spanContext(): SpanContext {
    return this.context;
  }
}

/** Reads one batch's bytes in order. */
class WireReader {
  private pos = 0;
  private readonly view: DataView;
  private readonly buf: Buffer;

  constructor(
    bytes: ArrayBuffer,
    length: number,
    private readonly keys: Map<number, string>,
  ) {
    this.buf = Buffer.from(bytes, 0, length);
    this.view = new DataView(bytes, 0, length);
  }

  u8(): number {
    return this.view.getUint8(this.pos++);
  }

  u32(): number {
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(): number {
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  str(): string {
    const n = this.u32();
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  value(): unknown {
    const tag = this.u8();
    switch (tag) {
      case T_STRING:
        return this.str();
      case T_NUMBER:
        return this.f64();
      case T_TRUE:
        return true;
      case T_FALSE:
        return false;
      case T_NULL:
        return null;
      case T_UNDEFINED:
        return undefined;
      case T_BYTES: {
        const n = this.u32();
        const bytes = new Uint8Array(this.buf.subarray(this.pos, this.pos + n));
        this.pos += n;
        return bytes;
      }
      case T_ARRAY: {
        const n = this.u32();
        const out: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value();
        return out;
      }
      case T_MAP: {
        const n = this.u32();
        const out: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          const key = this.str();
          out[key] = this.value();
        }
        return out;
      }
      default:
        throw new Error(`unknown value tag ${tag} at byte ${this.pos - 1}`);
    }
  }

  attributes(): Attributes {
    const n = this.u32();
    const out: Attributes = {};
    for (let k = 0; k < n; k++) {
      const index = this.view.getUint16(this.pos, true);
      this.pos += 2;
      let key: string | undefined;
      if (index === INLINE_KEY) key = this.str();
      else {
        key = this.keys.get(index);
        if (key === undefined) throw new Error(`attribute key ${index} was never defined`);
      }
      out[key] = this.value() as AttributeValue;
    }
    return out;
  }
}

/** The receiving side of {@link SpanWireEncoder}: rebuilds spans the OTLP exporters can serialise. */
export class SpanWireDecoder {
  private readonly resources = new Map<number, Resource>();
  private readonly scopes = new Map<number, InstrumentationScope>();
  private readonly keys = new Map<number, string>();

  decode(batch: WireBatch): ReadableSpan[] {
    for (const [index, attributes, schemaUrl] of batch.resources) {
      this.resources.set(index, resourceFromAttributes(attributes, schemaUrl === undefined ? undefined : { schemaUrl }));
    }
    for (const [index, name, version, schemaUrl] of batch.scopes) {
      this.scopes.set(index, { name, ...(version === undefined ? {} : { version }), ...(schemaUrl === undefined ? {} : { schemaUrl }) });
    }
    for (const [index, key] of batch.keys) this.keys.set(index, key);
    const r = new WireReader(batch.bytes, batch.length, this.keys);
    const traceState = (s: string): TraceState | undefined => (s === '' ? undefined : new TraceState(s));
    const spans: ReadableSpan[] = new Array(batch.spans);
    for (let s = 0; s < batch.spans; s++) {
      const span = new WireSpan();
      span.name = r.str();
      span.kind = r.u8() as SpanKind;
      const traceId = r.str();
      span.context = { traceId, spanId: r.str(), traceFlags: r.u8() };
      const ts = traceState(r.str());
      if (ts !== undefined) span.context.traceState = ts;
      const parentSpanId = r.str();
      const parentRemote = r.u8();
      if (parentRemote !== 3) {
        // The serialisers read only the parent's span ID and isRemote; its flags are not sent.
        const parent: SpanContext = { traceId, spanId: parentSpanId, traceFlags: span.context.traceFlags };
        const isRemote = remoteValue(parentRemote);
        if (isRemote !== undefined) parent.isRemote = isRemote;
        span.parentSpanContext = parent;
      }
      span.startTime = [r.f64(), r.f64()];
      span.endTime = [r.f64(), r.f64()];
      span.duration = hrTimeDuration(span.startTime, span.endTime);
      const code = r.u8();
      span.status = r.u8() === 0 ? { code } : { code, message: r.str() };
      span.droppedAttributesCount = r.u32();
      span.droppedEventsCount = r.u32();
      span.droppedLinksCount = r.u32();
      const resource = this.resources.get(r.u32());
      const scope = this.scopes.get(r.u32());
      if (resource === undefined || scope === undefined) throw new Error('span refers to a resource or scope that was never defined');
      span.resource = resource;
      span.instrumentationScope = scope;
      span.attributes = r.attributes();
      const events = r.u32();
      for (let e = 0; e < events; e++) {
        const name = r.str();
        const time: HrTime = [r.f64(), r.f64()];
        const droppedAttributesCount = r.u32();
        span.events.push({ name, time, droppedAttributesCount, attributes: r.attributes() });
      }
      const links = r.u32();
      for (let l = 0; l < links; l++) {
        const context: SpanContext = { traceId: r.str(), spanId: r.str(), traceFlags: r.u8() };
        const lts = traceState(r.str());
        if (lts !== undefined) context.traceState = lts;
        const isRemote = remoteValue(r.u8());
        if (isRemote !== undefined) context.isRemote = isRemote;
        const droppedAttributesCount = r.u32();
        span.links.push({ context, droppedAttributesCount, attributes: r.attributes() });
      }
      spans[s] = span;
    }
    return spans;
  }
}
