import { diag } from '@opentelemetry/api';
import { getNumberFromEnv } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ConsoleSpanExporter, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { MonitoredSpanProcessor, type ExportLogger, type MonitoredExport, type MonitorOptions } from './export-monitor.js';
import { exportThreadAvailable, ThreadedExportProcessor } from './export-thread.js';
import { OtlpProtoExportProcessor } from './otlp-proto.js';
import { TraceStore } from '../lookup/store.js';
import { propagatorFromEnv } from '../tracing/propagators.js';
import { gatewayMetrics } from './histograms.js';
import { prometheusViews } from './views.js';

export interface Telemetry {
  /** Serves GET /metrics from the gateway's own listener (the exporter starts no server). */
  readonly prometheus: PrometheusExporter;
  /** Where spans go, for the start-up log line: "otlp http/protobuf → http://…", "console" or "none". */
  readonly exportTarget: string;
  /** Problems with the OTEL_* settings, for the start-up log. */
  readonly warnings: string[];
  /** Routes export-trouble reports to the gateway's logger. */
  setLogger(logger: ExportLogger): void;
  /** This process's recent spans, for trace lookup; the admin listener applies the configured limits. */
  readonly traceStore: TraceStore;
  /** Flushes pending spans and stops the SDK. */
  shutdown(): Promise<void>;
}

let active: Telemetry | undefined;

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

/**
 * Picks the span exporter from the standard OTEL_* variables. Unlike the SDK default, no exporter
 * is created when neither an endpoint nor OTEL_TRACES_EXPORTER is set: a gateway started on its
 * own then runs quietly instead of failing a POST to localhost:4318 every few seconds.
 */
function spanExportFromEnv(env: NodeJS.ProcessEnv, options: MonitorOptions): { processor?: MonitoredExport; target: string } {
  const exporters = list(env.OTEL_TRACES_EXPORTER);
  if (exporters.includes('none')) return { target: 'none (OTEL_TRACES_EXPORTER=none)' };
  if (exporters.includes('console')) return { processor: new MonitoredSpanProcessor(new ConsoleSpanExporter(), options), target: 'console' };
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (exporters.length === 0 && !endpoint) return { target: 'none (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)' };
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf').trim();
  const where = endpoint ?? 'http://localhost:4318';
  const wire = protocol === 'http/json' ? 'http/json' : 'http/protobuf';
  if (protocol !== wire) diag.warn(`OTLP traces protocol "${protocol}" is not supported by the gateway; using http/protobuf`);
  // Protobuf: each span is written as its OTLP message when it ends, on this thread (cheaper
  // than handing it to another thread). JSON: serialised and sent on the export thread (unless
  // the sources are run uncompiled, where the thread's module does not exist).
  if (wire === 'http/protobuf') return { processor: new OtlpProtoExportProcessor(options), target: `otlp ${wire} → ${where}` };
  if (exportThreadAvailable()) return { processor: new ThreadedExportProcessor(options), target: `otlp ${wire} → ${where} (export thread)` };
  return { processor: new MonitoredSpanProcessor(new OTLPJsonTraceExporter(), options), target: `otlp ${wire} → ${where}` };
}

/**
 * Starts the OpenTelemetry SDK once per process. Loaded with `node --import` before the
 * gateway's modules so that the providers exist before anything asks for a tracer or meter.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (active) return active;
  // Logs go to stdout as JSON lines; the SDK must not also ship them as OTLP log records.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  env.OTEL_SERVICE_NAME ??= 'tracing-gateway';

  const warnings: string[] = [];
  // The request-duration histograms are the gateway's own (histograms.ts), read with the SDK's instruments.
  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [gatewayMetrics] });
  // Export is batched off the request path; OTEL_BSP_* tune the queue, which is bounded.
  const { processor: exportProcessor, target } = spanExportFromEnv(env, {
    maxQueueSize: getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048,
    maxExportBatchSize: getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    scheduledDelayMillis: getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY'),
    exportTimeoutMillis: getNumberFromEnv('OTEL_BSP_EXPORT_TIMEOUT'),
    logIntervalMs: getNumberFromEnv('GATEWAY_EXPORT_LOG_INTERVAL_MS') ?? 30_000,
  });
  const spanProcessors: SpanProcessor[] = exportProcessor ? [exportProcessor] : [new NoopSpanProcessor()];
  // Always registered: the config (read after the SDK starts) decides its limits, 0 turning it off.
  const traceStore = new TraceStore();
  spanProcessors.push(traceStore);

  const sdk = new NodeSDK({
    textMapPropagator: propagatorFromEnv(env.OTEL_PROPAGATORS, (w) => warnings.push(w)),
    spanProcessors,
    metricReaders: [prometheus],
    views: prometheusViews,
    instrumentations: [new RuntimeNodeInstrumentation()],
    // Attribute values come partly from clients (paths, user agents): keep them bounded by default.
    ...(env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT || env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT ? {} : { spanLimits: { attributeValueLengthLimit: 2048 } }),
  });
  sdk.start();
  exportProcessor?.bindMetrics();
  traceStore.bindMetrics();
  active = {
    prometheus,
    traceStore,
    exportTarget: target,
    setLogger: (logger) => exportProcessor?.setLogger(logger),
    warnings,
    shutdown: () => sdk.shutdown(),
  };
  return active;
}

export function telemetry(): Telemetry {
  return active ?? startTelemetry();
}
