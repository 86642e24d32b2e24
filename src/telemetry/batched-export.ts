import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { ExportMonitor, type ExportLogger, type MonitoredExport, type MonitorOptions } from './export-monitor.js';

/**
 * Where finished spans go: an encoder that writes each span into the open batch as it ends, and
 * a sender that ships full batches. The batching, limits and accounting around it are the same
 * for every channel (BatchedExportProcessor).
 */
export interface SpanChannel<B extends { spans: number }> {
  /** Spans in the open batch. */
  readonly size: number;
  /** Called before the first span of a batch is added. */
  prepare(): void;
  add(span: ReadableSpan): void;
  /** The open batch (undefined when empty); the next add() starts a new one. */
  take(): B | undefined;
  /** Ships a batch; `done` is called once with the outcome. */
  send(batch: B, done: (result: ExportResult) => void): void;
  /** Lets what was sent finish, then releases the channel. */
  stop(): Promise<void>;
}

/**
 * Batches sampled spans for a channel. Each span is encoded as it ends, so no span object waits
 * in a queue and the request thread never stalls to encode a whole batch; full batches (or
 * whatever waited `scheduledDelayMillis`) are sent as one. The OTEL_BSP_* limits apply as for the
 * SDK's batch processor: at most `maxQueueSize` spans waiting or in flight (more are dropped and
 * counted), batches of at most `maxExportBatchSize`, each answered within `exportTimeoutMillis`
 * or counted as failed.
 */
export class BatchedExportProcessor<B extends { spans: number }> implements MonitoredExport {
  private readonly monitor: ExportMonitor;
  private readonly maxQueueSize: number;
  private readonly maxBatch: number;
  private readonly delayMs: number;
  private readonly timeoutMs: number;
  private inFlight = 0;
  private readonly sending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    protected readonly channel: SpanChannel<B>,
    options: MonitorOptions,
  ) {
    this.maxQueueSize = options.maxQueueSize;
    this.maxBatch = Math.max(1, Math.min(options.maxExportBatchSize ?? 512, options.maxQueueSize));
    this.delayMs = options.scheduledDelayMillis ?? 5000;
    this.timeoutMs = options.exportTimeoutMillis ?? 30_000;
    this.monitor = new ExportMonitor(options.maxQueueSize, options.logIntervalMs);
  }

  bindMetrics(): void {
    this.monitor.bindMetrics(() => this.channel.size + this.inFlight);
  }

  setLogger(logger: ExportLogger): void {
    this.monitor.setLogger(logger);
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0 || this.stopped) return;
    const channel = this.channel;
    if (channel.size + this.inFlight >= this.maxQueueSize) {
      this.monitor.dropped(1);
      return;
    }
    if (channel.size === 0) channel.prepare();
    channel.add(span);
    if (channel.size >= this.maxBatch) void this.send();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, this.delayMs);
      this.timer.unref();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    void this.send();
  };

  private send(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.channel.take();
    if (batch === undefined) return Promise.resolve();
    const count = batch.spans;
    const seq = this.monitor.nextBatch();
    this.inFlight += count;
    const sent = new Promise<void>((resolve) => {
      let settled = false;
      const finish = (result: ExportResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.inFlight -= count;
        this.monitor.exported(count, result, seq);
        resolve();
      };
      const deadline = setTimeout(finish, this.timeoutMs, { code: ExportResultCode.FAILED, error: new Error(`export did not finish within ${this.timeoutMs} ms`) });
      deadline.unref();
      this.channel.send(batch, finish);
    });
    this.sending.add(sent);
    void sent.then(() => this.sending.delete(sent));
    return sent;
  }

  async forceFlush(): Promise<void> {
    await this.send();
    await Promise.all([...this.sending]);
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    await this.forceFlush();
    this.stopped = true;
    await this.channel.stop();
  }
}
