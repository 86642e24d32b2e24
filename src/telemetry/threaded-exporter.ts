import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { ExportWorkerData, FromWorker, ToWorker } from './export-worker.js';
import { SpanWireEncoder } from './span-wire.js';

const WORKER_URL = new URL('./export-worker.js', import.meta.url);

/** Whether the compiled export thread is there (it is not when the sources are run directly). */
export function exportThreadAvailable(): boolean {
  return WORKER_URL.protocol === 'file:' && existsSync(fileURLToPath(WORKER_URL));
}

/**
 * A span exporter whose OTLP serialisation and HTTP sending run on a separate thread. The batch
 * processor in front of it keeps its queue, batching and timeouts on the main thread; each batch
 * crosses as one flat array (span-wire.ts), which costs the request thread a fraction of
 * serialising it there, and a large batch no longer stalls requests for milliseconds.
 *
 * If the thread dies, the batches it held fail (and are counted as failed by the caller), and the
 * next batch starts a new thread.
 */
export class ThreadedSpanExporter implements SpanExporter {
  private worker: Worker | undefined;
  private encoder = new SpanWireEncoder();
  private nextId = 1;
  private readonly pending = new Map<number, (message: FromWorker) => void>();
  private stopped = false;

  constructor(private readonly protocol: ExportWorkerData['protocol']) {
    // Started now, while the gateway starts: the first batch must not wait for the thread to load.
    this.thread();
  }

  /** The running export thread, if any (tests stop it to check recovery). */
  get currentThread(): Worker | undefined {
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
      // The thread holds one batch and the HTTP client: a small heap is plenty.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 },
    });
    // An idle export thread must not keep the process alive.
    worker.unref();
    worker.on('message', (message: FromWorker) => {
      const done = this.pending.get(message.id);
      if (done === undefined) return;
      this.pending.delete(message.id);
      done(message);
    });
    const lost = (reason: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // Resources and scopes are sent once per thread: a new thread needs them again.
      this.encoder = new SpanWireEncoder();
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const done of waiting) done({ id: 0, ok: false, error: `span export thread ${reason}` });
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private request(message: ToWorker, done: (message: FromWorker) => void): void {
    const worker = this.thread();
    this.pending.set(message.id, done);
    // While a request is outstanding the thread keeps the process alive (a shutdown flush must finish).
    worker.ref();
    worker.postMessage(message);
  }

  private settled(): void {
    if (this.pending.size === 0) this.worker?.unref();
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
      return;
    }
    // The thread first: a new thread resets the encoder, which then sends resources and scopes again.
    this.thread();
    let batch;
    try {
      batch = this.encoder.encode(spans);
    } catch (err) {
      resultCallback({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
      return;
    }
    const id = this.nextId++;
    this.request({ type: 'export', id, batch }, (reply) => {
      this.settled();
      resultCallback(reply.ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error(reply.error ?? 'export failed') });
    });
  }

  private call(type: 'flush' | 'shutdown'): Promise<void> {
    if (this.worker === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.request({ type, id: this.nextId++ }, (reply) => {
        this.settled();
        if (reply.ok) resolve();
        else reject(new Error(reply.error ?? `${type} failed`));
      });
    });
  }

  forceFlush(): Promise<void> {
    return this.call('flush');
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.call('shutdown');
    } finally {
      const worker = this.worker;
      this.worker = undefined;
      await worker?.terminate();
    }
  }
}
