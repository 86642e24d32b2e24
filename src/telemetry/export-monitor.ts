import { metrics, TraceFlags, type Context, type Counter } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BatchSpanProcessor, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace';

export interface ExportLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface MonitorOptions {
  maxQueueSize: number;
  maxExportBatchSize?: number | undefined;
  scheduledDelayMillis?: number | undefined;
  exportTimeoutMillis?: number | undefined;
  /** Export failures are reported at most once per interval, with counts, not once per batch. */
  logIntervalMs: number;
}

/**
 * The accounting around span export, whichever processor does it: spans exported, failed and
 * dropped (queue full) are counted in `gateway.telemetry.spans`, the queue size is a gauge, and
 * export trouble is logged once per interval and once more when it recovers.
 */
export class ExportMonitor {
  private logger: ExportLogger | undefined;
  private failing = false;
  private failingSince = 0;
  private lastReport = 0;
  private failedSinceReport = 0;
  private droppedSinceReport = 0;
  private lastError = '';
  /** Batches handed to an exporter so far; each batch's number is its place in that order. */
  private sentSeq = 0;
  /** The last batch already sent when a failure was seen: only later ones can show a recovery. */
  private failedSeq = 0;
  private counter: Counter | undefined;
  private readonly attrs = { exported: { outcome: 'exported' }, failed: { outcome: 'failed' }, dropped: { outcome: 'dropped' } };

  constructor(
    private readonly maxQueueSize: number,
    private readonly logIntervalMs: number,
  ) {}

  /** Creates the instruments; called once the SDK's MeterProvider is registered. */
  bindMetrics(queueSize: () => number): void {
    const meter = metrics.getMeter('tracing-gateway');
    this.counter = meter.createCounter('gateway.telemetry.spans', {
      unit: '{span}',
      description: 'Spans handed to the exporter, by outcome: exported, failed (export error) or dropped (queue full).',
    });
    meter
      .createObservableGauge('gateway.telemetry.queue.size', { unit: '{span}', description: 'Spans waiting in the export queue.' })
      .addCallback((r) => r.observe(queueSize()));
  }

  /** Export trouble is logged through the gateway's logger once it exists. */
  setLogger(logger: ExportLogger): void {
    this.logger = logger;
  }

  dropped(count: number): void {
    this.counter?.add(count, this.attrs.dropped);
    this.droppedSinceReport += count;
    this.maybeReport();
  }

  /** Numbers a batch as it is handed to the exporter; pass the number back to exported(). */
  nextBatch(): number {
    return ++this.sentSeq;
  }

  /**
   * The outcome of one batch (`seq` from nextBatch()). With several batches in flight, one sent
   * before a failure was seen may still succeed afterwards; that is not a recovery.
   */
  exported(count: number, result: ExportResult, seq: number): void {
    if (result.code === ExportResultCode.SUCCESS) {
      this.counter?.add(count, this.attrs.exported);
      if (this.failing && seq > this.failedSeq) {
        this.failing = false;
        this.logger?.info(
          { failed_spans: this.failedSinceReport, dropped_spans: this.droppedSinceReport, outage_ms: Date.now() - this.failingSince },
          'span export recovered',
        );
        this.failedSinceReport = 0;
        this.droppedSinceReport = 0;
      }
      return;
    }
    this.counter?.add(count, this.attrs.failed);
    this.failedSinceReport += count;
    this.lastError = result.error?.message ?? 'export failed';
    if (!this.failing) {
      this.failing = true;
      this.failingSince = Date.now();
      this.lastReport = 0;
    }
    this.failedSeq = this.sentSeq;
    this.maybeReport();
  }

  private maybeReport(): void {
    const now = Date.now();
    if (!this.failing && this.droppedSinceReport === 0) return;
    if (now - this.lastReport < this.logIntervalMs) return;
    this.lastReport = now;
    this.logger?.warn(
      { error: this.lastError, failed_spans: this.failedSinceReport, dropped_spans: this.droppedSinceReport, queue_limit: this.maxQueueSize, report_interval_ms: this.logIntervalMs },
      this.failing ? 'span export failing; spans queue up to the limit and are then dropped' : 'span export queue full; spans dropped',
    );
    this.failedSinceReport = 0;
    this.droppedSinceReport = 0;
  }
}

/** A span processor that exports through the gateway's monitoring (see ExportMonitor). */
export interface MonitoredExport extends SpanProcessor {
  bindMetrics(): void;
  setLogger(logger: ExportLogger): void;
}

/**
 * The SDK's batch processor with the export accounting around it, for exporters that run on the
 * request thread (console; OTLP when the export thread is unavailable). Export stays batched and
 * off the request path; a down or slow collector only fills the bounded queue.
 */
export class MonitoredSpanProcessor implements MonitoredExport {
  private readonly inner: BatchSpanProcessor;
  private readonly monitor: ExportMonitor;
  private readonly maxQueueSize: number;
  private queued = 0;

  constructor(exporter: SpanExporter, options: MonitorOptions) {
    this.maxQueueSize = options.maxQueueSize;
    this.monitor = new ExportMonitor(options.maxQueueSize, options.logIntervalMs);
    this.inner = new BatchSpanProcessor({
      exporter: new ObservedExporter(exporter, this),
      maxQueueSize: options.maxQueueSize,
      maxExportBatchSize: options.maxExportBatchSize,
      scheduledDelayMillis: options.scheduledDelayMillis,
      exportTimeoutMillis: options.exportTimeoutMillis,
    });
  }

  bindMetrics(): void {
    this.monitor.bindMetrics(() => this.queued);
  }

  setLogger(logger: ExportLogger): void {
    this.monitor.setLogger(logger);
  }

  onStart(span: Span, parentContext: Context): void {
    this.inner.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    // The batch processor drops it too when full; this is where it gets counted.
    if (this.queued >= this.maxQueueSize) this.monitor.dropped(1);
    else this.queued++;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  /** @internal called by ObservedExporter when a batch leaves the queue */
  taken(count: number): void {
    this.queued = Math.max(0, this.queued - count);
  }

  /** @internal */
  nextBatch(): number {
    return this.monitor.nextBatch();
  }

  /** @internal */
  exported(count: number, result: ExportResult, seq: number): void {
    this.monitor.exported(count, result, seq);
  }
}

class ObservedExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly monitor: MonitoredSpanProcessor,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const count = spans.length;
    const seq = this.monitor.nextBatch();
    this.monitor.taken(count);
    // The callback keeps only the count: the spans themselves can be collected once encoded.
    this.inner.export(spans, (result) => {
      this.monitor.exported(count, result, seq);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
