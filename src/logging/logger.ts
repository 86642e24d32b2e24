import pino, { type Logger, type DestinationStream } from 'pino';
import { requestStorage, type LogBindings } from '../context/request-context.js';
import { IsoTime } from './iso-time.js';

export type { Logger };

const EMPTY: Partial<LogBindings> = {};

/** Adds the current request's IDs to every line; a line outside any request gets none. */
function requestMixin(): Partial<LogBindings> {
  return requestStorage.getStore()?.log ?? EMPTY;
}

/** Credentials never reach a log line, whichever object they travel in. */
export const DEFAULT_REDACT_PATHS = [
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["proxy-authorization"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'request.headers.authorization',
  'request.headers.cookie',
  'response.headers["set-cookie"]',
  'upstreamHeaders["set-cookie"]',
];

export interface LoggerOptions {
  level: string;
  file?: string | undefined;
  redact?: string[];
  /** A destination for tests; otherwise stdout or `file`. */
  destination?: DestinationStream;
  /** The proxy thread (1…n) writing, when the gateway runs several: a `worker` field on each line. */
  worker?: number;
}

export function createLogger(options: LoggerOptions): Logger {
  const clock = new IsoTime();
  const destination =
    options.destination ??
    // Asynchronous writes keep logging off the request path; flushed on shutdown.
    pino.destination({ dest: options.file ?? 1, sync: false, mkdir: options.file !== undefined});
  return pino(
    {
      level: options.level,
      base: { service: process.env.OTEL_SERVICE_NAME ?? 'tracing-gateway', ...(options.worker === undefined ? {} : { worker: options.worker }) },
      messageKey: 'msg',
      // pino's isoTime, formatted without Date#toISOString per line (iso-time.ts).
      timestamp: () => `,"time":"${clock.at(Date.now())}"`,
      formatters: { level: (label) => ({ level: label }) },
      mixin: requestMixin,
      // pino's default merge writes into the mixin object, which is shared by the request's lines.
      mixinMergeStrategy: (mergeObject, mixinObject) => ({ ...mixinObject, ...mergeObject }),
      redact: { paths: [...DEFAULT_REDACT_PATHS, ...(options.redact ?? [])], censor: '[REDACTED]' },
    },
    destination,
  );
}
