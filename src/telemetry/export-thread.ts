import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { BatchedExportProcessor, type SpanChannel } from './batched-export.js';
import type { MonitorOptions } from './export-monitor.js';
import type { FromWorker, ToWorker } from './export-worker.js';
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

  constructor(private readonly onRestart: () => void) {
    // Started now, while the gateway starts: the first batch must not wait for the thread to load.
    this.thread();
  }

  /** The running thread, if any (tests stop it to check recovery). */
  get current(): Worker | undefined {
    return this.worker;
  }

  private thread(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_URL, {
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

/** Spans encoded with span-wire.ts, shipped through the export thread. */
class ThreadChannel implements SpanChannel<WireBatch> {
  private readonly encoder = new SpanWireEncoder();
  readonly thread: ExportThread;

  constructor() {
    this.thread = new ExportThread(() => this.encoder.forgetSent());
  }

  get size(): number {
    return this.encoder.size;
  }

  prepare(): void {
    this.thread.ensure();
  }

  add(span: ReadableSpan): void {
    this.encoder.add(span);
  }

  take(): WireBatch | undefined {
    return this.encoder.take();
  }

  send(batch: WireBatch, done: (result: ExportResult) => void): void {
    this.thread.send(batch, done);
  }

  stop(): Promise<void> {
    return this.thread.stop();
  }
}

/**
 * Batches sampled spans for the export thread, which serialises them as OTLP http/json and sends
 * them (http/protobuf is written on the request thread as spans end, otlp-proto.ts).
 */
export class ThreadedExportProcessor extends BatchedExportProcessor<WireBatch> {
  constructor(options: MonitorOptions) {
    super(new ThreadChannel(), options);
  }

  /** The export thread (tests stop it to check recovery). */
  get exportThread(): ExportThread {
    return (this.channel as ThreadChannel).thread;
  }
}
