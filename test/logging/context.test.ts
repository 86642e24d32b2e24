import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { RequestContext, requestStorage } from '../../src/context/request-context.js';
import { createLogger } from '../../src/logging/logger.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', destination }) };
}

function contextFor(n: number): RequestContext {
  const traceId = n.toString(16).padStart(32, 'a');
  const spanId = n.toString(16).padStart(16, 'b');
  const span = trace.wrapSpanContext({ traceId, spanId, traceFlags: 1 });
  return new RequestContext(`req-${n}`, 'GET', '/x', span, trace.setSpan(ROOT_CONTEXT, span), 1, 0);
}

describe('request context reaches every log line', () => {
  it('through timers, promise chains, event emitters and stream events, without mixing requests', async () => {
    const { lines, logger } = capture();
    const emitter = new EventEmitter();
    const work = Array.from({ length: 50 }, (_, n) =>
      requestStorage.run(contextFor(n + 1), async () => {
        await new Promise((r) => setTimeout(r, Math.random() * 10));
        logger.info({ n: n + 1, via: 'timer' }, 'line');
        await Promise.resolve().then(() => logger.info({ n: n + 1, via: 'promise' }, 'line'));
        const done = new Promise<void>((resolve) => {
          emitter.once(`go-${n + 1}`, () => {
            logger.info({ n: n + 1, via: 'emitter' }, 'line');
            resolve();
          });
        });
        setImmediate(() => emitter.emit(`go-${n + 1}`));
        await done;
        await new Promise<void>((resolve) => {
          const stream = Readable.from(['a', 'b']);
          stream.on('data', () => logger.info({ n: n + 1, via: 'stream' }, 'line'));
          stream.on('end', resolve);
        });
      }),
    );
    await Promise.all(work);
    logger.info('outside any request');
    logger.flush();
    await new Promise((r) => setTimeout(r, 50));

    const inRequest = lines.filter((l) => l.n !== undefined);
    expect(inRequest).toHaveLength(50 * 5);
    for (const line of inRequest) {
      const n = line.n as number;
      expect(line.request_id).toBe(`req-${n}`);
      expect(line.trace_id).toBe(n.toString(16).padStart(32, 'a'));
      expect(line.span_id).toBe(n.toString(16).padStart(16, 'b'));
      expect(line.trace_flags).toBe('01');
    }
    const outside = lines.find((l) => l.msg === 'outside any request')!;
    expect(outside.trace_id).toBeUndefined();
    expect(outside.request_id).toBeUndefined();
  });

  it('redacts credentials wherever headers are logged', async () => {
    const { lines, logger } = capture();
    logger.info({ headers: { authorization: 'Bearer s3cret', cookie: 'sid=s3cret', 'set-cookie': ['sid=s3cret'], accept: '*/*' } }, 'headers');
    logger.flush();
    await new Promise((r) => setTimeout(r, 20));
    const headers = lines[0]!.headers as Record<string, unknown>;
    expect(headers).toEqual({ authorization: '[REDACTED]', cookie: '[REDACTED]', 'set-cookie': '[REDACTED]', accept: '*/*' });
    expect(JSON.stringify(lines)).not.toContain('s3cret');
  });

  it('keeps a line the caller logs from altering the shared per-request fields', async () => {
    const { lines, logger } = capture();
    const ctx = contextFor(7);
    requestStorage.run(ctx, () => {
      logger.info({ extra: 1 }, 'first');
      logger.info('second');
    });
    logger.flush();
    await new Promise((r) => setTimeout(r, 20));
    expect(lines[1]!.extra).toBeUndefined();
    expect(Object.keys(ctx.log).sort()).toEqual(['request_id', 'span_id', 'trace_flags', 'trace_id']);
  });
});
