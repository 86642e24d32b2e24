// Target 2 (and, started with `--import @opentelemetry/auto-instrumentations-node/register`,
// target 3): the usual Node reverse proxy, Fastify 5 + @fastify/http-proxy with their defaults,
// no logging. Usage: node fastify-proxy.ts <port> <upstream-url>
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const port = Number(process.argv[2]);
const upstream = process.argv[3];
if (!port || !upstream) {
  process.stderr.write('usage: node fastify-proxy.ts <port> <upstream-url>\n');
  process.exit(2);
}

const app = Fastify({ logger: false });
// Same path upstream as the gateway's route (prefix kept), so every target asks nginx for /api/...
await app.register(proxy, { upstream, prefix: '/api', rewritePrefix: '/api' });
await app.listen({ port, host: '127.0.0.1' });

// The auto-instrumentation register entry installs a SIGTERM listener (to flush the SDK), which
// replaces Node's default exit-on-SIGTERM; close the server and let the SDK's flush finish,
// with a bounded fallback so the process always ends.
process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 5000).unref();
  void app.close();
});
