// The gateway's own spans: the SERVER and CLIENT span of every request, made without the SDK's
// Tracer and SpanImpl but from the same parts (the configured sampler, span limits, resource and
// span processors), so that the processors, exporters and the trace-lookup store see the same
// ReadableSpan the SDK would have made. What it saves per request: the SDK validates every
// attribute through an options object and a fresh WeakSet, and keeps times as arrays from start;
// here the gateway's string, number and boolean attributes take a direct path (same limits,
// same truncation) and anything else goes through the SDK's own validation.
import {
  INVALID_SPAN_CONTEXT,
  SamplingDecision,
  SpanStatusCode,
  TraceFlags,
  diag,
  isSpanContextValid,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  type TimeInput,
} from '@opentelemetry/api';
import {
  AddAttributeDecision,
  addHrTimes,
  cleanAttributes,
  cleanSimpleAttributes,
  isTimeInput,
  isTimeInputHrTime,
  hrTimeDuration,
  isTracingSuppressed,
  maybeAddAttribute,
  millisToHrTime,
  type InstrumentationScope,
} from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { type IdGenerator, type ReadableSpan, type Sampler, type SpanLimits, type SpanProcessor, type TimedEvent } from '@opentelemetry/sdk-trace';
import { PooledRandomIdGenerator } from './random-ids.js';

/** W3C Trace Context Level 2 "random" trace-flag. */
const RANDOM_FLAG = 0x02;

/** The SDK TracerProvider's defaults for limits not set (OTEL_SPAN_*_LIMIT unset). */
const DEFAULT_LIMITS: Required<SpanLimits> = {
  attributeCountLimit: 128,
  attributeValueLengthLimit: Infinity,
  eventCountLimit: 128,
  linkCountLimit: 128,
  attributePerEventCountLimit: 128,
  attributePerLinkCountLimit: 128,
};

export interface GatewayTracerOptions {
  resource: Resource;
  sampler: Sampler;
  spanLimits: SpanLimits;
  /** The same processors the SDK's TracerProvider was given (it flushes and shuts them down). */
  spanProcessors: SpanProcessor[];
  scope?: InstrumentationScope;
  idGenerator?: IdGenerator;
}

export class GatewayTracer {
  readonly resource: Resource;
  readonly scope: InstrumentationScope;
  readonly limits: Required<SpanLimits>;
  readonly processors: SpanProcessor[];
  private readonly sampler: Sampler;
  private readonly ids: IdGenerator;

  constructor(options: GatewayTracerOptions) {
    this.resource = options.resource;
    this.scope = options.scope ?? { name: 'tracing-gateway', version: undefined, schemaUrl: undefined };
    this.sampler = options.sampler;
    this.processors = options.spanProcessors;
    this.ids = options.idGenerator ?? new PooledRandomIdGenerator();
    const limits = { ...DEFAULT_LIMITS };
    for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof SpanLimits>) {
      const value = options.spanLimits[key];
      if (value !== undefined) limits[key] = value;
    }
    if (!(limits.attributeValueLengthLimit > 0)) limits.attributeValueLengthLimit = Infinity;
    this.limits = limits;
  }

  /**
   * Starts a span as the SDK's Tracer would for the same arguments: the parent's trace (when its
   * context is valid) or a new one, the sampler's decision and trace state, a non-recording span
   * when the decision is not to record. Unlike the SDK's, its trace flags also carry the W3C
   * Level 2 random bit: set for a trace it starts (the id generator's trace ids are random),
   * kept from the parent otherwise, so the flags the gateway propagates are the span's own.
   */
  startSpan(name: string, kind: SpanKind, attributes: Attributes, parent: Context, links: Link[] | undefined): Span {
    if (isTracingSuppressed(parent)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const parentSpan = trace.getSpan(parent);
    const parentContext = parentSpan?.spanContext();
    const continued = parentContext !== undefined && isSpanContextValid(parentContext);
    const spanId = this.ids.generateSpanId();
    const traceId = continued ? parentContext.traceId : this.ids.generateTraceId();
    const cleanLinks: Link[] = [];
    if (links !== undefined) {
      const limits = { attributeCountLimit: this.limits.attributePerLinkCountLimit, attributeValueLengthLimit: this.limits.attributeValueLengthLimit };
      for (const link of links) cleanLinks.push({ context: link.context, ...cleanAttributes(link.attributes, limits) });
    }
    const result = this.sampler.shouldSample(parent, traceId, name, kind, attributes, cleanLinks);
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags: (result.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE) | (continued ? parentContext.traceFlags & RANDOM_FLAG : RANDOM_FLAG),
      traceState: result.traceState ?? (continued ? parentContext.traceState : undefined),
    };
    if (result.decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    const kept = this.keepable(attributes);
    const clock = continued && parentSpan instanceof GatewaySpan && !parentSpan.ended ? parentSpan : undefined;
    const span = new GatewaySpan(this, name, kind, spanContext, continued ? parentContext : undefined, cleanLinks, kept >= 0 ? attributes : {}, Math.max(kept, 0), clock);
    if (kept < 0) span.setAttributes(attributes);
    if (result.attributes) span.setAttributes(result.attributes);
    for (let i = 0; i < this.processors.length; i++) this.processors[i]!.onStart(span, parent);
    return span;
  }

  /**
   * The number of attributes in `attributes` when the span can keep the object itself, as
   * setAttributes would have filled a new one: a plain, extensible object whose values are all
   * strings within the length limit, numbers or booleans under non-empty keys, no more of them
   * than the count limit. -1 otherwise (the span then copies them one by one). The gateway builds
   * a fresh object for every span, so keeping it saves a copy per span.
   */
  private keepable(attributes: Attributes): number {
    if (Object.getPrototypeOf(attributes) !== Object.prototype || !Object.isExtensible(attributes)) return -1;
    const lengthLimit = this.limits.attributeValueLengthLimit;
    let count = 0;
    for (const key in attributes) {
      if (key.length === 0 || !Object.hasOwn(attributes, key)) return -1;
      const value = attributes[key];
      const type = typeof value;
      if (type === 'string') {
        if ((value as string).length > lengthLimit) return -1;
      } else if (type !== 'number' && type !== 'boolean') return -1;
      count++;
    }
    return count <= this.limits.attributeCountLimit ? count : -1;
  }
}

/** A span of the gateway: the OpenTelemetry API Span, and the SDK's ReadableSpan once ended. */
export class GatewaySpan implements Span, ReadableSpan {
  readonly events: TimedEvent[] = [];
  readonly links: Link[];
  readonly startTime: HrTime;
  endTime: HrTime = [0, 0];
  duration: HrTime = [-1, -1];
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  ended = false;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  /** Monotonic clock at start: the end time is the start plus this clock's elapsed time. */
  private readonly startedAt = performance.now();

  constructor(
    private readonly tracer: GatewayTracer,
    public name: string,
    readonly kind: SpanKind,
    private readonly context: SpanContext,
    readonly parentSpanContext: SpanContext | undefined,
    links: Link[],
    /** Attributes already checked against the limits (GatewayTracer.keepable), owned by the span from now on. */
    readonly attributes: Attributes,
    private attributeCount: number,
    /**
     * A live gateway span this one starts under. The wall clock has millisecond steps, so a child
     * timed by it would start in the same millisecond as its parent (no visible offset in a
     * waterfall) and could seem to end after it; read from the parent's monotonic clock instead,
     * the child sits where it really happened inside its parent, to the microsecond.
     */
    clock?: GatewaySpan,
  ) {
    this.startTime = clock === undefined ? millisToHrTime(Date.now()) : clock.elapsedTime(this.startedAt);
    const linkLimit = tracer.limits.linkCountLimit;
    if (links.length > linkLimit) {
      this.links = links.slice(links.length - linkLimit);
      this.droppedLinksCount = links.length - linkLimit;
    } else this.links = links;
  }

  get resource(): Resource {
    return this.tracer.resource;
  }

  get instrumentationScope(): InstrumentationScope {
    return this.tracer.scope;
  }

  spanContext(): SpanContext {
    return this.context;
  }

  isRecording(): boolean {
    return !this.ended;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (this.ended || value === undefined) return this;
    const type = typeof value;
    if ((type === 'string' || type === 'number' || type === 'boolean') && key.length > 0) {
      const attributes = this.attributes;
      const isNew = !Object.hasOwn(attributes, key);
      if (isNew && this.attributeCount >= this.tracer.limits.attributeCountLimit) return this.dropAttribute();
      const limit = this.tracer.limits.attributeValueLengthLimit;
      attributes[key] = type === 'string' && (value as string).length > limit ? (value as string).substring(0, limit) : value;
      if (isNew) this.attributeCount++;
      return this;
    }
    const decision = maybeAddAttribute({ key, value, attributes: this.attributes, limits: this.tracer.limits, currentAttributesCount: this.attributeCount });
    if (decision === AddAttributeDecision.DROP_LIMIT_REACHED) return this.dropAttribute();
    if (decision === AddAttributeDecision.ADD_NEW) this.attributeCount++;
    return this;
  }

  private dropAttribute(): this {
    if (++this.droppedAttributesCount === 1) diag.warn('Dropping extra attributes.');
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) if (Object.hasOwn(attributes, key)) this.setAttribute(key, attributes[key]!);
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    const limits = this.tracer.limits;
    if (limits.eventCountLimit === 0) {
      this.droppedEventsCount++;
      return this;
    }
    if (this.events.length >= limits.eventCountLimit) {
      this.events.shift();
      this.droppedEventsCount++;
    }
    let attributes = attributesOrTime as Attributes | undefined;
    if (isTimeInput(attributesOrTime)) {
      if (!isTimeInput(time)) time = attributesOrTime;
      attributes = undefined;
    }
    const clean = cleanSimpleAttributes(attributes, { attributeCountLimit: limits.attributePerEventCountLimit, attributeValueLengthLimit: limits.attributeValueLengthLimit });
    this.events.push({ name, time: this.timeOf(time), ...clean });
    return this;
  }

  addLink(link: Link): this {
    if (this.ended) return this;
    const limits = this.tracer.limits;
    if (limits.linkCountLimit === 0) {
      this.droppedLinksCount++;
      return this;
    }
    if (this.links.length >= limits.linkCountLimit) {
      this.links.shift();
      this.droppedLinksCount++;
    }
    this.links.push({ context: link.context, ...cleanAttributes(link.attributes, { attributeCountLimit: limits.attributePerLinkCountLimit, attributeValueLengthLimit: limits.attributeValueLengthLimit }) });
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    // As the SDK: UNSET changes nothing, OK is final, only ERROR carries a message.
    if (this.ended || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK) return this;
    this.status = status.code === SpanStatusCode.ERROR && typeof status.message === 'string' ? { code: status.code, message: status.message } : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else if (exception) {
      if (exception.code) attributes['exception.type'] = exception.code.toString();
      else if (exception.name) attributes['exception.type'] = exception.name;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    if (attributes['exception.type'] !== undefined || attributes['exception.message'] !== undefined) this.addEvent('exception', attributes, time);
  }

  end(endTime?: TimeInput): void {
    if (this.ended) {
      diag.error(`${this.name} ${this.context.traceId}-${this.context.spanId} - You can only call end() on a span once.`);
      return;
    }
    this.endTime = this.timeOf(endTime);
    this.duration = hrTimeDuration(this.startTime, this.endTime);
    if (this.duration[0] < 0) {
      diag.warn('Inconsistent start and end time, startTime > endTime. Setting span duration to 0ms.', this.startTime, this.endTime);
      this.endTime = this.startTime.slice() as HrTime;
      this.duration = [0, 0];
    }
    const processors = this.tracer.processors;
    for (let i = 0; i < processors.length; i++) processors[i]!.onEnding?.(this);
    this.ended = true;
    for (let i = 0; i < processors.length; i++) processors[i]!.onEnd(this);
  }

  /** The wall-clock time at monotonic time `at` (performance.now()), read from this span's start. */
  private elapsedTime(at: number): HrTime {
    return addHrTimes(this.startTime, millisToHrTime(at - this.startedAt));
  }

  /** A time given to addEvent/end: epoch or performance.now() milliseconds, a Date, or an HrTime; default now. */
  private timeOf(input: TimeInput | undefined): HrTime {
    if (input === undefined) return this.elapsedTime(performance.now());
    if (isTimeInputHrTime(input)) return input;
    if (input instanceof Date) return millisToHrTime(input.getTime());
    return millisToHrTime(input <= performance.now() ? input + performance.timeOrigin : input);
  }
}
