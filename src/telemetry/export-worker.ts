// The span export thread: rebuilds each batch sent by ThreadedExportProcessor and hands it to the
// standard OTLP exporter, which serialises it and sends it to the collector. All OTLP settings
// come from the same OTEL_* environment as the main thread (a worker gets a copy of it).
import { parentPort, workerData } from 'node:worker_threads';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { SpanWireDecoder, type WireBatch } from './span-wire.js';

export interface ExportWorkerData {
  protocol: 'http/protobuf' | 'http/json';
}

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

const { protocol } = workerData as ExportWorkerData;
const exporter = protocol === 'http/json' ? new OTLPJsonTraceExporter() : new OTLPProtoTraceExporter();
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
