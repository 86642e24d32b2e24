import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { ExportMonitor, type ExportLogger, type MonitoredExport, type MonitorOptions } from './export-monitor.js';
import type { ExportWorkerData, FromWorker, ToWorker } from './export-worker.js';
import { SpanWireEncoder, type WireBatch } from './span-wire.js';

const WORKER_URL = new URL('./export-worker.js', import.meta.url);

/** Whether the compiled export thread is there (it is not when the sources are run directly). */
export function exportThreadAvailable(): boolean {
  return WORKER_URL.protocol === 'file:' && existsSync(fileURLToPath(WORKER_URL));
}

/**
 * The worker thread that serialises and sends span batches (export-worker.ts), and the request /
 * reply protocol with it. If the thread dies, the requests it held fail, and the next request
 * starts a new thread; `onRestart` lets the encoder define resources and scopes again.
 */
export class ExportThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (message: FromWorker) => void>();

  constructor(
    private readonly protocol: ExportWorkerData['protocol'],
    private readonly onRestart: () => void,
  ) {
    // Started now, while the gateway starts: the first batch must not wait for the thread to load.
    this.thread();
  }

  /** The running thread, if any (tests stop it to check recovery). */
  get current(): Worker | undefined {
    return this.worker;
  }

  private thread(): Worker {
    if (this.worker !== undefined) return this.worker;
    const workerData: ExportWorkerData = { protocol: this.protocol };
    const worker = new Worker(WORKER_URL, {
      workerData,
      name: 'span-export',
      // Not the parent's `--import …/register.js`: that would start an SDK (and another export
      // thread) inside this thread.
      execArgv: [],
      // The thread holds a few batches and the HTTP client: a small heap is plenty.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 },
    });
    // An idle export thread must not keep the process alive.
    worker.unref();
    worker.on('message', (message: FromWorker) => {
      const done = this.pending.get(message.id);
      if (done === undefined) return;
      this.pending.delete(message.id);
      if (this.pending.size === 0) worker.unref();
      done(message);
    });
    const lost = (reason: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const done of waiting) done({ id: 0, ok: false, error: `span export thread ${reason}` });
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (code ${code})`));
    if (this.nextId > 1) this.onRestart();
    this.worker = worker;
    return worker;
  }

  private request(message: ToWorker, done: (message: FromWorker) => void, transfer: ArrayBuffer[] = []): void {
    const worker = this.thread();
    this.pending.set(message.id, done);
    // While a request is outstanding the thread keeps the process alive (a shutdown flush must finish).
    worker.ref();
    worker.postMessage(message, transfer);
  }

  /** Starts the thread if it is not running (after a loss), before a batch is built for it. */
  ensure(): void {
    this.thread();
  }

  send(batch: WireBatch, done: (result: ExportResult) => void): void {
    // The span bytes move to the thread (transferred, not copied); this side never reads them again.
    this.request(
      { type: 'export', id: this.nextId++, batch },
      (reply) => done(reply.ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error(reply.error ?? 'export failed') }),
      [batch.bytes],
    );
  }

  /** Lets the exporter finish what it holds, then ends the thread. */
  async stop(): Promise<void> {
    try {
      if (this.worker !== undefined) {
        await new Promise<void>((resolve, reject) => {
          this.request({ type: 'shutdown', id: this.nextId++ }, (reply) => (reply.ok ? resolve() : reject(new Error(reply.error ?? 'shutdown failed'))));
        });
      }
    } finally {
      const worker = this.worker;
      this.worker = undefined;
      await worker?.terminate();
    }
  }
}

/**
 * Batches sampled spans for the export thread. Each span is encoded into the open batch as it
 * ends (span-wire.ts), so no span object waits in a queue and the request thread never stalls
 * to encode a whole batch; full batches (or whatever waited `scheduledDelayMillis`) go to the
 * thread as one transferred buffer. The OTEL_BSP_* limits apply as for the SDK's batch processor: at most
 * `maxQueueSize` spans waiting or in flight (more are dropped and counted), batches of at most
 * `maxExportBatchSize`, each answered within `exportTimeoutMillis` or counted as failed.
 */
export class ThreadedExportProcessor implements MonitoredExport {
  private readonly encoder = new SpanWireEncoder();
  private readonly thread: ExportThread;
  private readonly monitor: ExportMonitor;
  private readonly maxQueueSize: number;
  private readonly maxBatch: number;
  private readonly delayMs: number;
  private readonly timeoutMs: number;
  private inFlight = 0;
  private readonly sending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(protocol: ExportWorkerData['protocol'], options: MonitorOptions) {
    this.maxQueueSize = options.maxQueueSize;
    this.maxBatch = Math.max(1, Math.min(options.maxExportBatchSize ?? 512, options.maxQueueSize));
    this.delayMs = options.scheduledDelayMillis ?? 5000;
    this.timeoutMs = options.exportTimeoutMillis ?? 30_000;
    this.monitor = new ExportMonitor(options.maxQueueSize, options.logIntervalMs);
    this.thread = new ExportThread(protocol, () => this.encoder.forgetSent());
  }

  /** The export thread (tests stop it to check recovery). */
  get exportThread(): ExportThread {
    return this.thread;
  }

  bindMetrics(): void {
    this.monitor.bindMetrics(() => this.encoder.size + this.inFlight);
  }

  setLogger(logger: ExportLogger): void {
    this.monitor.setLogger(logger);
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0 || this.stopped) return;
    if (this.encoder.size + this.inFlight >= this.maxQueueSize) {
      this.monitor.dropped(1);
      return;
    }
    if (this.encoder.size === 0) this.thread.ensure();
    this.encoder.add(span);
    if (this.encoder.size >= this.maxBatch) void this.send();
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
    const batch = this.encoder.take();
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
      this.thread.send(batch, finish);
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
    await this.thread.stop();
  }
}
