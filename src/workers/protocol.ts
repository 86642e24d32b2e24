import type { GatewayConfig } from '../config/schema.js';

/** What a proxy thread starts with. */
export interface ProxyThreadData {
  config: GatewayConfig;
  /** 1…threads; shown as `worker` in log lines and metric labels. */
  worker: number;
  threads: number;
  /** The port to share (0 for the first thread when listen.port is 0: the system picks one). */
  port: number;
}

/** Questions the main thread asks a proxy thread. */
export type ThreadMethod = 'metrics' | 'spansOf' | 'traceIdsForRequest' | 'storeStats' | 'health';

/** Main thread → proxy thread. */
export type ToThread =
  | { type: 'call'; id: number; method: ThreadMethod; arg?: string }
  | { type: 'answer'; id: number; value?: unknown; error?: string }
  | { type: 'shutdown' };

/** Proxy thread → main thread. */
export type FromThread =
  | { type: 'listening'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'reply'; id: number; value?: unknown; error?: string }
  /** A thread's own /metrics asks for every thread's metrics, merged. */
  | { type: 'ask'; id: number; method: 'metrics' }
  | { type: 'stopped'; clean: boolean };
