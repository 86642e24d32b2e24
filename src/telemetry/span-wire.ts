// Finished spans as one flat array of primitives, for handing a batch to the export thread.
// Structured cloning a flat array costs a fraction of cloning span objects (no per-object keys,
// no prototypes), and a fraction of serialising OTLP on the request thread.
import type { Attributes, HrTime, Link, SpanContext, SpanKind, SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { TraceState, hrTimeDuration } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';

type Value = string | number | boolean | undefined | Attributes[string];

/** One batch: the flat span data plus any resource or scope not sent on this channel before. */
export interface WireBatch {
  /** [index, attributes, schemaUrl] for resources first seen in this batch. */
  resources: Array<[number, Attributes, string | undefined]>;
  /** [index, name, version, schemaUrl] for instrumentation scopes first seen in this batch. */
  scopes: Array<[number, string, string | undefined, string | undefined]>;
  spans: number;
  data: Value[];
}

/** isRemote is three-valued on the wire too: OTLP's span flags say whether it was known at all. */
function remoteCode(isRemote: boolean | undefined): number {
  return isRemote === undefined ? 2 : isRemote ? 1 : 0;
}

function remoteValue(code: number): boolean | undefined {
  return code === 2 ? undefined : code === 1;
}

function pushAttributes(out: Value[], attributes: Attributes | undefined): void {
  if (attributes === undefined) {
    out.push(0);
    return;
  }
  const at = out.length;
  out.push(0);
  let n = 0;
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined) continue;
    out.push(key, value);
    n++;
  }
  out[at] = n;
}

/**
 * Encodes spans for one channel, one span at a time (each as it ends, so the span object itself
 * can be collected young). Resources and scopes are defined once per channel and referred to by
 * index afterwards; the decoder on the other side keeps the same tables. After the receiving side
 * was replaced, `forgetSent()` makes the next batches define them again.
 *
 * Layout per span: name, kind, traceId, spanId, traceFlags, traceState, parentSpanId,
 * parent isRemote (0 false, 1 true, 2 unknown, -1 no parent), start s, start ns, end s, end ns,
 * status code, status message, dropped attributes/events/links, resource index, scope index,
 * attributes (count, then key, value pairs), events (count, then name, time s, ns, dropped,
 * attributes), links (count, then traceId, spanId, traceFlags, traceState, isRemote (0/1/2),
 * dropped, attributes).
 */
export class SpanWireEncoder {
  private readonly resources = new Map<Resource, number>();
  private readonly scopes = new Map<InstrumentationScope, number>();
  private readonly resourceDefs: WireBatch['resources'] = [];
  private readonly scopeDefs: WireBatch['scopes'] = [];
  private readonly sentResources = new Set<number>();
  private readonly sentScopes = new Set<number>();
  private batch: WireBatch | undefined;

  /** Spans in the batch being built. */
  get size(): number {
    return this.batch?.spans ?? 0;
  }

  /** The batch built so far (undefined when empty); the next add() starts a new one. */
  take(): WireBatch | undefined {
    const batch = this.batch;
    this.batch = undefined;
    return batch;
  }

  /** Encodes `spans` as one batch (what an exporter's export() receives). */
  encode(spans: readonly ReadableSpan[]): WireBatch {
    for (const span of spans) this.add(span);
    return this.take() ?? { resources: [], scopes: [], spans: 0, data: [] };
  }

  forgetSent(): void {
    this.sentResources.clear();
    this.sentScopes.clear();
    if (this.batch === undefined) return;
    // The open batch may refer to definitions only the previous receiver had.
    for (const def of this.resourceDefs) this.define(def[0], def, this.sentResources, this.batch.resources);
    for (const def of this.scopeDefs) this.define(def[0], def, this.sentScopes, this.batch.scopes);
  }

  /** Puts a definition into the open batch and notes that the receiver has it. */
  private define<T>(index: number, def: T, sent: Set<number>, into: T[]): void {
    sent.add(index);
    into.push(def);
  }

  add(span: ReadableSpan): void {
    const batch = (this.batch ??= { resources: [], scopes: [], spans: 0, data: [] });
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
    const out = batch.data;
    const sc = span.spanContext();
    const parent = span.parentSpanContext;
    const status = span.status;
    out.push(
      span.name,
      span.kind,
      sc.traceId,
      sc.spanId,
      sc.traceFlags,
      sc.traceState?.serialize() ?? '',
      parent?.spanId ?? '',
      parent === undefined ? -1 : remoteCode(parent.isRemote),
      span.startTime[0],
      span.startTime[1],
      span.endTime[0],
      span.endTime[1],
      status.code,
      status.message,
      span.droppedAttributesCount,
      span.droppedEventsCount,
      span.droppedLinksCount,
      resource,
      scope,
    );
    pushAttributes(out, span.attributes);
    out.push(span.events.length);
    for (const event of span.events) {
      out.push(event.name, event.time[0], event.time[1], event.droppedAttributesCount ?? 0);
      pushAttributes(out, event.attributes);
    }
    out.push(span.links.length);
    for (const link of span.links) {
      const lc = link.context;
      out.push(lc.traceId, lc.spanId, lc.traceFlags, lc.traceState?.serialize() ?? '', remoteCode(lc.isRemote), link.droppedAttributesCount ?? 0);
      pushAttributes(out, link.attributes);
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

/** The receiving side of {@link SpanWireEncoder}: rebuilds spans the OTLP exporters can serialise. */
export class SpanWireDecoder {
  private readonly resources = new Map<number, Resource>();
  private readonly scopes = new Map<number, InstrumentationScope>();

  decode(batch: WireBatch): ReadableSpan[] {
    for (const [index, attributes, schemaUrl] of batch.resources) {
      this.resources.set(index, resourceFromAttributes(attributes, schemaUrl === undefined ? undefined : { schemaUrl }));
    }
    for (const [index, name, version, schemaUrl] of batch.scopes) {
      this.scopes.set(index, { name, ...(version === undefined ? {} : { version }), ...(schemaUrl === undefined ? {} : { schemaUrl }) });
    }
    const d = batch.data;
    let i = 0;
    const attributes = (): Attributes => {
      const n = d[i++] as number;
      const out: Attributes = {};
      for (let k = 0; k < n; k++) {
        const key = d[i++] as string;
        out[key] = d[i++] as Attributes[string];
      }
      return out;
    };
    const traceState = (s: string): TraceState | undefined => (s === '' ? undefined : new TraceState(s));
    const spans: ReadableSpan[] = new Array(batch.spans);
    for (let s = 0; s < batch.spans; s++) {
      const span = new WireSpan();
      span.name = d[i++] as string;
      span.kind = d[i++] as SpanKind;
      const traceId = d[i++] as string;
      span.context = { traceId, spanId: d[i++] as string, traceFlags: d[i++] as number };
      const ts = traceState(d[i++] as string);
      if (ts !== undefined) span.context.traceState = ts;
      const parentSpanId = d[i++] as string;
      const parentRemote = d[i++] as number;
      if (parentRemote !== -1) {
        // The serialisers read only the parent's span ID and isRemote; its flags are not sent.
        const parent: SpanContext = { traceId, spanId: parentSpanId, traceFlags: span.context.traceFlags };
        const isRemote = remoteValue(parentRemote);
        if (isRemote !== undefined) parent.isRemote = isRemote;
        span.parentSpanContext = parent;
      }
      span.startTime = [d[i++] as number, d[i++] as number];
      span.endTime = [d[i++] as number, d[i++] as number];
      span.duration = hrTimeDuration(span.startTime, span.endTime);
      const code = d[i++] as number;
      const message = d[i++] as string | undefined;
      span.status = message === undefined ? { code } : { code, message };
      span.droppedAttributesCount = d[i++] as number;
      span.droppedEventsCount = d[i++] as number;
      span.droppedLinksCount = d[i++] as number;
      span.resource = this.resources.get(d[i++] as number)!;
      span.instrumentationScope = this.scopes.get(d[i++] as number)!;
      span.attributes = attributes();
      const events = d[i++] as number;
      for (let e = 0; e < events; e++) {
        const name = d[i++] as string;
        const time: HrTime = [d[i++] as number, d[i++] as number];
        const droppedAttributesCount = d[i++] as number;
        span.events.push({ name, time, droppedAttributesCount, attributes: attributes() });
      }
      const links = d[i++] as number;
      for (let l = 0; l < links; l++) {
        const context: SpanContext = { traceId: d[i++] as string, spanId: d[i++] as string, traceFlags: d[i++] as number };
        const lts = traceState(d[i++] as string);
        if (lts !== undefined) context.traceState = lts;
        const isRemote = remoteValue(d[i++] as number);
        if (isRemote !== undefined) context.isRemote = isRemote;
        const droppedAttributesCount = d[i++] as number;
        span.links.push({ context, droppedAttributesCount, attributes: attributes() });
      }
      spans[s] = span;
    }
    return spans;
  }
}
