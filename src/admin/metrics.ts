import type { FastifyInstance } from 'fastify';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

/** GET /metrics in Prometheus text format, rendered by the OTel Prometheus exporter. */
export async function metricsRoute(app: FastifyInstance, opts: { prometheus: PrometheusExporter }): Promise<void> {
  app.get('/metrics', (request, reply) => {
    reply.hijack();
    opts.prometheus.getMetricsRequestHandler(request.raw, reply.raw);
  });
}
