// A proxy thread: the gateway's proxy (server.ts) on the shared listen port, with its own
// OpenTelemetry SDK, span store and meters. The main thread (proxy-threads.ts) starts and stops
// it and asks it for its metrics, spans and upstream health.
import { parentPort, workerData } from 'node:worker_threads';
import { startTelemetry } from '../telemetry/sdk.js';
import type { FromThread, ProxyThreadData, ThreadMethod, ToThread } from './protocol.js';

// The SDK must exist before the gateway's modules ask for tracers and meters (as in main.ts).
const telemetry = startTelemetry();
const { createLogger } = await import('../logging/logger.js');
const { buildGateway } = await import('../server.js');
const { storeLimitsFor } = await import('../admin/admin-server.js');

const port = parentPort;
if (port === null) throw new Error('proxy-thread.js runs as a worker thread only');
const { config, worker, threads, port: listenPort } = workerData as ProxyThreadData;

function post(message: FromThread): void {
  port!.postMessage(message);
}

const logger = createLogger({ ...config.logging, worker });
telemetry.setLogger(logger);
telemetry.traceStore.configure(storeLimitsFor(config, process.env, threads));

const asked = new Map<number, { resolve: (value: string) => void; reject: (err: Error) => void }>();
let nextAsk = 1;
function askMergedMetrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    const id = nextAsk++;
    asked.set(id, { resolve, reject });
    post({ type: 'ask', id, method: 'metrics' });
  });
}

const gateway = buildGateway(config, logger, { reusePort: true, port: listenPort, metricsText: askMergedMetrics });

async function answer(method: ThreadMethod, arg: string | undefined): Promise<unknown> {
  const store = telemetry.traceStore;
  switch (method) {
    case 'metrics':
      return telemetry.metricsText();
    case 'spansOf':
      return store.spansOf(arg ?? '');
    case 'traceIdsForRequest':
      return store.traceIdsForRequest(arg ?? '');
    case 'storeStats':
      return store.stats();
    case 'health':
      return gateway.health.snapshot();
  }
}

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  let clean = true;
  try {
    await gateway.close();
    await telemetry.shutdown();
  } catch (err) {
    clean = false;
    logger.error({ err }, 'proxy thread did not stop cleanly');
  }
  logger.flush(() => {
    post({ type: 'stopped', clean });
    // In a worker, process.exit ends this thread only.
    process.exit(clean ? 0 : 1);
  });
}

port.on('message', (message: ToThread) => {
  switch (message.type) {
    case 'call':
      answer(message.method, message.arg).then(
        (value) => post({ type: 'reply', id: message.id, value }),
        (err: Error) => post({ type: 'reply', id: message.id, error: err.message }),
      );
      return;
    case 'answer': {
      const waiting = asked.get(message.id);
      asked.delete(message.id);
      if (message.error !== undefined) waiting?.reject(new Error(message.error));
      else waiting?.resolve(message.value as string);
      return;
    }
    case 'shutdown':
      void shutdown();
  }
});

try {
  const address = await gateway.listen();
  post({ type: 'listening', port: address.port });
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  post({ type: 'failed', message: `cannot listen on ${config.listen.host}:${listenPort || config.listen.port}: ${e.code ?? e.message}` });
  logger.flush(() => process.exit(1));
}
