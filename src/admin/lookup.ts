import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../logging/logger.js';
import { LookupFailure, type TraceLookup } from '../lookup/service.js';
import type { TraceSummary } from '../lookup/summary.js';

export interface LookupRoutesOptions {
  lookup: TraceLookup;
  /** The admin token; undefined means the lookup is disabled (never open by accident). */
  token: string | undefined;
  /** Why the lookup is disabled, for the 503 answer. */
  disabledReason: string;
  logger: Logger;
}

/**
 * The page ships as plain files next to this module's source. tsc copies no assets, so from
 * dist/src/admin/ the same files are found through the source tree (shipped with the package).
 */
function pageDirectory(): URL {
  const candidates = [new URL('./page/', import.meta.url), new URL('../../../src/admin/page/', import.meta.url)];
  const found = candidates.find((dir) => existsSync(new URL('index.html', dir)));
  if (!found) throw new Error('the admin page files (src/admin/page/) are missing');
  return found;
}

const PAGE_FILES = [
  ['index.html', 'text/html; charset=utf-8'],
  ['app.js', 'text/javascript; charset=utf-8'],
  ['style.css', 'text/css; charset=utf-8'],
] as const;

// The page loads only its own script and style and talks only to this listener; span data
// (client-controlled paths and user agents among it) is rendered as text, never as markup.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
};

const COMMON_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Bearer token check in constant time: both sides are hashed to equal-length digests first. */
export function tokenMatcher(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    if (authorization === undefined) return false;
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    return m !== null && timingSafeEqual(digest(m[1]!), expected);
  };
}

/** GET /admin/ (page), /admin/traces/:traceId, /admin/requests/:requestId, /admin/lookup/:id. */
export async function lookupRoutes(app: FastifyInstance, opts: LookupRoutesOptions): Promise<void> {
  const dir = pageDirectory();
  const files = new Map(PAGE_FILES.map(([name, type]) => [name, { body: readFileSync(new URL(name, dir)), type }]));
  const { logger, lookup } = opts;
  const matches = opts.token !== undefined ? tokenMatcher(opts.token) : undefined;

  app.addHook('onSend', async (_request, reply) => {
    reply.headers(COMMON_HEADERS);
  });

  app.get('/admin', (_request, reply) => reply.redirect('/admin/', 308));
  for (const [name] of PAGE_FILES) {
    const file = files.get(name)!;
    app.get(name === 'index.html' ? '/admin/' : `/admin/${name}`, (_request, reply) => {
      reply.type(file.type).header('cache-control', 'no-cache').headers(PAGE_HEADERS).send(file.body);
    });
  }

  /** Disabled → 503, missing/wrong token → 401; the token itself is never logged or echoed. */
  async function guard(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    reply.header('cache-control', 'no-store');
    if (matches === undefined) {
      return reply.code(503).send({ error: 'lookup_disabled', message: `Trace lookup is disabled: ${opts.disabledReason}.` });
    }
    if (!matches(request.headers.authorization)) {
      logger.warn({ admin_path: request.routeOptions.url, client_address: request.ip }, 'admin request rejected: missing or wrong token');
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="tracing-gateway admin"')
        .send({ error: 'unauthorized', message: 'Send the admin token as "Authorization: Bearer <token>".' });
    }
    return undefined;
  }

  async function answer(kind: string, id: string, reply: FastifyReply, run: () => Promise<TraceSummary>): Promise<FastifyReply> {
    const started = performance.now();
    let status = 200;
    try {
      const summary = await run();
      if (summary.traceId !== id) reply.header('content-location', `/admin/traces/${summary.traceId}`);
      return reply.send(summary);
    } catch (err) {
      status = err instanceof LookupFailure ? err.status : 500;
      if (!(err instanceof LookupFailure)) throw err;
      return reply.code(err.status).send(err.body);
    } finally {
      // An audit line per lookup: what was looked up and the outcome (never the token).
      logger.info({ lookup_kind: kind, lookup_id: id.slice(0, 128), status, duration_ms: Math.round(performance.now() - started) }, 'admin trace lookup');
    }
  }

  app.get<{ Params: { traceId: string } }>('/admin/traces/:traceId', { onRequest: guard }, (request, reply) =>
    answer('trace', request.params.traceId, reply, () => lookup.trace(request.params.traceId)),
  );
  app.get<{ Params: { requestId: string } }>('/admin/requests/:requestId', { onRequest: guard }, (request, reply) =>
    answer('request', request.params.requestId, reply, () => lookup.request(request.params.requestId)),
  );
  app.get<{ Params: { id: string } }>('/admin/lookup/:id', { onRequest: guard }, (request, reply) =>
    answer('any', request.params.id, reply, () => lookup.any(request.params.id)),
  );
}
