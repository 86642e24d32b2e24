import { context, diag, DiagConsoleLogger, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { diagLogLevelFromString, getBooleanFromEnv, getNumberFromEnv, getStringFromEnv } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ConsoleSpanExporter, NoopSpanProcessor, TracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { resourceFromEnv, samplerFromEnv, spanLimitsFromEnv } from './env.js';
import { MonitoredSpanProcessor, type ExportLogger, type MonitoredExport, type MonitorOptions } from './export-monitor.js';
import { exportThreadAvailable, ThreadedExportProcessor } from './export-thread.js';
import { OtlpProtoExportProcessor } from './otlp-proto.js';
import { TraceStore } from '../lookup/store.js';
import { GatewayTracer } from '../tracing/gateway-tracer.js';
import { PooledRandomIdGenerator } from '../tracing/random-ids.js';
import { propagatorFromEnv } from '../tracing/propagators.js';
import { useGatewayTracer } from '../tracing/spans.js';
import { gatewayMetrics } from './histograms.js';
import { prometheusViews } from './views.js';

export interface Telemetry {
  /** Serves GET /metrics from the gateway's own listener (the exporter starts no server). */
  readonly prometheus: PrometheusExporter;
  /** This thread's metrics in Prometheus text format (what GET /metrics serves with one proxy thread). */
  metricsText(): Promise<string>;
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
 * Only traces and metrics are set up: logs go to stdout as JSON lines and are never also
 * shipped as OTLP log records.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (active) return active;
  env.OTEL_SERVICE_NAME ??= 'tracing-gateway';
  const logLevel = getStringFromEnv('OTEL_LOG_LEVEL');
  if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel: diagLogLevelFromString(logLevel) });

  const warnings: string[] = [];
  const warn = (message: string): void => void warnings.push(message);
  // The request-duration histograms are the gateway's own (histograms.ts), read with the SDK's instruments.
  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [gatewayMetrics] });
  // The exporter's own serialiser settings: no prefix, no timestamps, target_info, no scope labels.
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  const metricsText = async (): Promise<string> => {
    const { resourceMetrics, errors } = await prometheus.collect();
    if (errors.length > 0) diag.error('metrics collection errors', ...errors);
    return serializer.serialize(resourceMetrics);
  };
  // OTEL_SDK_DISABLED: no tracer provider is registered, so every span is a no-op.
  const disabled = getBooleanFromEnv('OTEL_SDK_DISABLED');
  // Export is batched off the request path; OTEL_BSP_* tune the queue, which is bounded.
  const { processor: exportProcessor, target } = disabled ? { target: 'none (OTEL_SDK_DISABLED)' } : spanExportFromEnv(env, {
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

  const resource = resourceFromEnv(warn);
  // The gateway's own /metrics stays up with OTEL_SDK_DISABLED: only tracing is switched off.
  const meterProvider = new MeterProvider({ resource, readers: [prometheus], views: prometheusViews });
  metrics.setGlobalMeterProvider(meterProvider);
  new RuntimeNodeInstrumentation().setMeterProvider(meterProvider);
  let tracerProvider: TracerProvider | undefined;
  if (disabled) warn('OTEL_SDK_DISABLED is set: no spans are recorded or exported (/metrics is still served)');
  else {
    const sampler = samplerFromEnv(warn);
    const spanLimits = spanLimitsFromEnv();
    const idGenerator = new PooledRandomIdGenerator();
    tracerProvider = new TracerProvider({ resource, sampler, spanLimits, spanProcessors, idGenerator });
    // The gateway's own SERVER and CLIENT spans: same sampler, limits, ids, resource and processors.
    useGatewayTracer(new GatewayTracer({ resource, sampler, spanLimits, spanProcessors, idGenerator }));
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const propagator = propagatorFromEnv(env.OTEL_PROPAGATORS, warn);
    if (propagator) propagation.setGlobalPropagator(propagator);
    trace.setGlobalTracerProvider(tracerProvider);
  }
  exportProcessor?.bindMetrics();
  traceStore.bindMetrics();
  active = {
    prometheus,
    metricsText,
    traceStore,
    exportTarget: target,
    setLogger: (logger) => exportProcessor?.setLogger(logger),
    warnings,
    shutdown: async () => {
      await Promise.all([tracerProvider?.shutdown(), meterProvider.shutdown()]);
    },
  };
  return active;
}

export function telemetry(): Telemetry {
  return active ?? startTelemetry();
}
