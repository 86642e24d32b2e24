import type { FastifyInstance } from 'fastify';

/** Renders the Prometheus text exposition: this thread's metrics, or all proxy threads' merged. */
export type MetricsText = () => Promise<string>;

/** GET /metrics in Prometheus text format. A failed collection is a 500, so the scrape counts as failed. */
export async function metricsRoute(app: FastifyInstance, opts: { text: MetricsText }): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    let body: string;
    try {
      body = await opts.text();
    } catch (err) {
      return reply.code(500).type('text/plain').send(`# failed to collect metrics: ${(err as Error).message}\n`);
    }
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(body);
  });
}
