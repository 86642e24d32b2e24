import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { mergeExpositions } from '../admin/metrics-merge.js';
import type { HealthSnapshot, HealthSource, UpstreamHealth } from '../admin/health.js';
import type { GatewayConfig } from '../config/schema.js';
import type { SpanSource } from '../lookup/service.js';
import type { StoreStats } from '../lookup/store.js';
import type { SpanData } from '../lookup/summary.js';
import type { Logger } from '../logging/logger.js';
import type { FromThread, ProxyThreadData, ThreadMethod, ToThread } from './protocol.js';

const THREAD_URL = new URL('./proxy-thread.js', import.meta.url);
/** How long a thread has to answer a question (metrics, lookup, health). */
const CALL_TIMEOUT_MS = 5_000;
/** A thread that died is started again after this long, doubling while it keeps dying young. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A thread that ran this long before dying counts as healthy: its restart delay starts over. */
const STABLE_MS = 60_000;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Slot {
  worker: number;
  thread: Worker | undefined;
  pending: Map<number, Pending>;
  startedAt: number;
  restartDelay: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** Resource attributes with one service.instance.id for every thread, unless the operator set one. */
function sharedInstanceId(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const attributes = env.OTEL_RESOURCE_ATTRIBUTES ?? '';
  if (/(^|,)\s*service\.instance\.id\s*=/.test(attributes)) return env;
  const id = `service.instance.id=${randomUUID()}`;
  return { ...env, OTEL_RESOURCE_ATTRIBUTES: attributes.trim() ? `${attributes},${id}` : id };
}

const STATUS_RANK = { up: 0, unknown: 1, down: 2 } as const;
const CIRCUIT_RANK = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * The proxy threads of a gateway with `workers` > 1: each runs the whole proxy (proxy-thread.ts)
 * on the same port, with SO_REUSEPORT letting the kernel spread connections over them, as
 * Envoy's and nginx's workers do. The main thread starts them, starts a thread again when it
 * dies, stops them on shutdown, and answers for all of them: their metrics merged, their stored
 * spans, their view of the upstreams.
 */
export class ProxyThreads implements SpanSource, HealthSource {
  private readonly slots: Slot[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly threadUrl: URL;
  /** listen.port until the first thread listens, then the port it got (0 lets the system pick). */
  private port: number;
  private nextCall = 1;
  private stopping = false;

  constructor(
    private readonly config: GatewayConfig,
    private readonly logger: Logger,
    readonly count: number,
    options: { env?: NodeJS.ProcessEnv; threadUrl?: URL } = {},
  ) {
    this.env = sharedInstanceId(options.env ?? process.env);
    this.threadUrl = options.threadUrl ?? THREAD_URL;
    this.port = config.listen.port;
    this.slots = Array.from({ length: count }, (_, i) => ({
      worker: i + 1,
      thread: undefined,
      pending: new Map(),
      startedAt: 0,
      restartDelay: RESTART_DELAY_MS,
      restartTimer: undefined,
    }));
  }

  /** Starts every thread; resolves once all listen (the first picks the port when listen.port is 0). */
  async start(): Promise<{ host: string; port: number }> {
    const [first, ...rest] = this.slots;
    this.port = await this.launch(first!);
    await Promise.all(rest.map((slot) => this.launch(slot)));
    return { host: this.config.listen.host, port: this.port };
  }

  private launch(slot: Slot): Promise<number> {
    const data: ProxyThreadData = { config: this.config, worker: slot.worker, threads: this.count, port: this.port };
    const thread = new Worker(this.threadUrl, { name: `proxy-${slot.worker}`, workerData: data, env: this.env });
    slot.thread = thread;
    slot.startedAt = Date.now();
    let stoppedCleanly: boolean | undefined;
    return new Promise<number>((resolve, reject) => {
      let listening = false;
      thread.on('message', (message: FromThread) => {
        switch (message.type) {
          case 'listening':
            listening = true;
            resolve(message.port);
            return;
          case 'failed':
            reject(new Error(message.message));
            return;
          case 'reply': {
            const waiting = slot.pending.get(message.id);
            if (waiting === undefined) return;
            slot.pending.delete(message.id);
            clearTimeout(waiting.timer);
            if (message.error !== undefined) waiting.reject(new Error(`worker ${slot.worker}: ${message.error}`));
            else waiting.resolve(message.value);
            return;
          }
          case 'ask':
            this.metricsText().then(
              (value) => this.post(slot, { type: 'answer', id: message.id, value }),
              (err: Error) => this.post(slot, { type: 'answer', id: message.id, error: err.message }),
            );
            return;
          case 'stopped':
            stoppedCleanly = message.clean;
        }
      });
      thread.on('error', (err) => {
        this.logger.error({ err, worker: slot.worker }, `proxy thread ${slot.worker} failed`);
        if (!listening) reject(err);
      });
      thread.on('exit', (code) => {
        if (slot.thread !== thread) return;
        slot.thread = undefined;
        for (const waiting of slot.pending.values()) {
          clearTimeout(waiting.timer);
          waiting.reject(new Error(`worker ${slot.worker} stopped`));
        }
        slot.pending.clear();
        if (!listening) reject(new Error(`proxy thread ${slot.worker} exited (code ${code}) before listening`));
        if (this.stopping) {
          if (stoppedCleanly === false) process.exitCode = 1;
          return;
        }
        if (!listening) return;
        // Died while serving: start it again, backing off while it keeps dying young.
        if (Date.now() - slot.startedAt >= STABLE_MS) slot.restartDelay = RESTART_DELAY_MS;
        this.logger.error({ worker: slot.worker, exit_code: code, restart_in_ms: slot.restartDelay }, `proxy thread ${slot.worker} exited unexpectedly: starting it again`);
        slot.restartTimer = setTimeout(() => {
          slot.restartTimer = undefined;
          this.launch(slot).then(
            () => this.logger.info({ worker: slot.worker }, `proxy thread ${slot.worker} is serving again`),
            (err: Error) => this.logger.error({ worker: slot.worker, err }, `proxy thread ${slot.worker} could not be started again`),
          );
        }, slot.restartDelay);
        slot.restartDelay = Math.min(slot.restartDelay * 2, MAX_RESTART_DELAY_MS);
      });
    });
  }

  private post(slot: Slot, message: ToThread): void {
    slot.thread?.postMessage(message);
  }

  /** The running threads (a thread being started again is left out until it runs). */
  get running(): number {
    return this.slots.filter((s) => s.thread !== undefined).length;
  }

  private call<T>(slot: Slot, method: ThreadMethod, arg?: string): Promise<T> {
    const thread = slot.thread;
    if (thread === undefined) return Promise.reject(new Error(`worker ${slot.worker} is not running`));
    return new Promise<T>((resolve, reject) => {
      const id = this.nextCall++;
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new Error(`worker ${slot.worker} did not answer within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      slot.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      thread.postMessage({ type: 'call', id, method, arg } satisfies ToThread);
    });
  }

  /** Asks every running thread. */
  private all<T>(method: ThreadMethod, arg?: string): Promise<T[]> {
    return Promise.all(this.slots.filter((s) => s.thread !== undefined).map((slot) => this.call<T>(slot, method, arg)));
  }

  /** Every thread's metrics as one exposition (metrics-merge.ts). */
  readonly metricsText = async (): Promise<string> => mergeExpositions(await this.all<string>('metrics'));

  async spansOf(traceId: string): Promise<SpanData[]> {
    return (await this.all<SpanData[]>('spansOf', traceId)).flat();
  }

  async traceIdsForRequest(requestId: string): Promise<string[]> {
    return [...new Set((await this.all<string[]>('traceIdsForRequest', requestId)).flat())];
  }

  async stats(): Promise<StoreStats> {
    const each = await this.all<StoreStats>('storeStats');
    const sum = (key: 'spans' | 'bytes' | 'evicted' | 'maxSpans' | 'maxBytes') => each.reduce((n, s) => n + s[key], 0);
    // What every thread still holds: the newest of their oldest spans.
    const oldest = each.map((s) => s.oldestStartMs).filter((t): t is number => t !== undefined);
    return { spans: sum('spans'), bytes: sum('bytes'), evicted: sum('evicted'), maxSpans: sum('maxSpans'), maxBytes: sum('maxBytes'), oldestStartMs: oldest.length ? Math.max(...oldest) : undefined };
  }

  /** Ready when every thread is running and ready; each upstream as the thread that sees it worst. */
  async snapshot(): Promise<HealthSnapshot> {
    const each = await this.all<HealthSnapshot>('health');
    const upstreams: HealthSnapshot['upstreams'] = {};
    for (const snapshot of each) {
      for (const [name, seen] of Object.entries(snapshot.upstreams)) {
        const had = upstreams[name];
        if (had === undefined) {
          upstreams[name] = seen;
          continue;
        }
        const worse: UpstreamHealth = STATUS_RANK[seen.status] > STATUS_RANK[had.status] ? seen : had;
        upstreams[name] = { ...worse, circuit: CIRCUIT_RANK[seen.circuit] > CIRCUIT_RANK[had.circuit] ? seen.circuit : had.circuit };
      }
    }
    return { ready: each.length === this.count && each.every((s) => s.ready), upstreams };
  }

  /** Each thread drains its requests and flushes its spans; resolves when all have stopped. */
  async stop(): Promise<void> {
    this.stopping = true;
    const deadline = this.config.shutdown.graceMs + 10_000;
    await Promise.all(
      this.slots.map((slot) => {
        clearTimeout(slot.restartTimer);
        const thread = slot.thread;
        if (thread === undefined) return undefined;
        return new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            this.logger.error({ worker: slot.worker }, `proxy thread ${slot.worker} did not stop within ${deadline} ms: terminating it`);
            process.exitCode = 1;
            void thread.terminate();
          }, deadline);
          thread.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          thread.postMessage({ type: 'shutdown' } satisfies ToThread);
        });
      }),
    );
  }
}
