// The span export thread for OTLP http/json: rebuilds each batch sent by ThreadedExportProcessor
// and hands it to the standard OTLP JSON exporter, which serialises it and sends it to the
// collector. (http/protobuf is written on the request thread as spans end: otlp-proto.ts.) All OTLP settings
// come from the same OTEL_* environment as the main thread (a worker gets a copy of it).
import { parentPort } from 'node:worker_threads';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { SpanWireDecoder, type WireBatch } from './span-wire.js';

/** Main thread → worker. */
export type ToWorker = { type: 'export'; id: number; batch: WireBatch } | { type: 'shutdown'; id: number };
/** Worker → main thread: the outcome of the request with the same id. */
export interface FromWorker {
  id: number;
  ok: boolean;
  error?: string;
}

const port = parentPort;
if (port === null) throw new Error('export-worker.js runs as a worker thread only');

const exporter = new OTLPTraceExporter();
const decoder = new SpanWireDecoder();

function reply(message: FromWorker): void {
  port!.postMessage(message);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'export': {
      let spans;
      try {
        spans = decoder.decode(message.batch);
      } catch (err) {
        reply({ id: message.id, ok: false, error: `span batch could not be decoded: ${errorText(err)}` });
        return;
      }
      exporter.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) reply({ id: message.id, ok: true });
        else reply({ id: message.id, ok: false, error: result.error?.message ?? 'export failed' });
      });
      return;
    }
    case 'shutdown':
      exporter.shutdown().then(
        () => reply({ id: message.id, ok: true }),
        (err: unknown) => reply({ id: message.id, ok: false, error: errorText(err) }),
      );
      return;
  }
});
