import pino, { type Logger } from 'pino';
import type { LogBindings } from '../context/request-context.js';
import { IsoTime } from './iso-time.js';

/** One finished request, as the access log reports it. Optional fields are left out when undefined. */
export interface AccessRecord {
  log: LogBindings;
  method: string;
  path: string;
  route: string | undefined;
  status: number;
  duration_ms: number;
  upstream: string | undefined;
  upstream_status: number | undefined;
  error_type: string | undefined;
  bytes_in: number;
  bytes_out: number;
  client_address: string | undefined;
  sampled: boolean;
}

interface PinoInternals {
  [key: symbol]: unknown;
}

export const ACCESS_MESSAGE = 'request completed';
const LEVEL_INFO = 30;
const str = JSON.stringify;

/**
 * The "request completed" line, written once per request. pino's generic path (mixin merge,
 * redaction pass, a type check per field) is the largest logging cost on the proxy path, so this
 * fixed shape is encoded directly and written to the logger's own destination. The result is
 * byte for byte the line `logger.info({ ...log, method, ... }, 'request completed')` writes with
 * the gateway's pino options (test/logging/access-log-encoder.test.ts compares the two).
 *
 * Lines are handed to the destination once per event-loop turn, not one by one: pino's
 * destination measures the byte length of everything still waiting on each write, which grows
 * while a file write is in flight. A line can therefore follow another request's line that was
 * written a moment later; each carries its own time. `flush()` writes what is waiting (shutdown).
 */
export class AccessLog {
  private readonly logger: Logger;
  private readonly stream: { write(line: string): unknown };
  /** The logger's bindings (`,"service":"…"`), already serialised by pino. */
  private readonly bindings: string;
  private readonly levelLabel: string;
  private readonly clock = new IsoTime();
  private pending = '';
  private scheduled = false;

  constructor(logger: Logger) {
    const internals = logger as unknown as PinoInternals;
    this.logger = logger;
    this.stream = internals[pino.symbols.streamSym] as { write(line: string): unknown };
    this.bindings = (internals[pino.symbols.chindingsSym] as string | undefined) ?? '';
    this.levelLabel = `{"level":${str(logger.levels.labels[LEVEL_INFO] ?? 'info')}`;
  }

  write(r: AccessRecord): void {
    if (this.logger.levelVal > LEVEL_INFO) return;
    const log = r.log;
    let line = `${this.levelLabel},"time":"${this.clock.at(Date.now())}"${this.bindings},"trace_id":"${log.trace_id}","span_id":"${log.span_id}","trace_flags":"${log.trace_flags}","request_id":${str(log.request_id)},"method":${str(r.method)},"path":${str(r.path)}`;
    if (r.route !== undefined) line += `,"route":${str(r.route)}`;
    line += `,"status":${r.status},"duration_ms":${r.duration_ms}`;
    if (r.upstream !== undefined) line += `,"upstream":${str(r.upstream)}`;
    if (r.upstream_status !== undefined) line += `,"upstream_status":${r.upstream_status}`;
    if (r.error_type !== undefined) line += `,"error_type":${str(r.error_type)}`;
    line += `,"bytes_in":${r.bytes_in},"bytes_out":${r.bytes_out}`;
    if (r.client_address !== undefined) line += `,"client_address":${str(r.client_address)}`;
    line += `,"sampled":${r.sampled},"msg":"${ACCESS_MESSAGE}"}\n`;
    this.pending += line;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Hands the waiting lines to the destination (which writes them asynchronously). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending === '') return;
    const lines = this.pending;
    this.pending = '';
    this.stream.write(lines);
  };
}
