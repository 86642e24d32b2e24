import type { TextMapPropagator } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { JaegerPropagator } from '@opentelemetry/propagator-jaeger';
import { W3CTraceContextPropagator } from './w3c-propagator.js';

/**
 * The propagators named by OTEL_PROPAGATORS (default `tracecontext,baggage`), with the gateway's
 * strict W3C Trace Context Level 2 implementation in place of the SDK's `tracecontext`.
 * Returns null for `none` (no context is read or written).
 */
export function propagatorFromEnv(value: string | undefined, warn: (message: string) => void): TextMapPropagator | null {
  const names = [...new Set((value?.trim() ? value : 'tracecontext,baggage').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))];
  if (names.includes('none')) return null;
  const propagators: TextMapPropagator[] = [];
  for (const name of names) {
    switch (name) {
      case 'tracecontext':
        propagators.push(new W3CTraceContextPropagator());
        break;
      case 'baggage':
        propagators.push(new W3CBaggagePropagator());
        break;
      case 'b3':
        propagators.push(new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }));
        break;
      case 'b3multi':
        propagators.push(new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }));
        break;
      case 'jaeger':
        propagators.push(new JaegerPropagator());
        break;
      default:
        warn(`OTEL_PROPAGATORS: "${name}" is not supported by the gateway (supported: tracecontext, baggage, b3, b3multi, jaeger, none)`);
    }
  }
  return propagators.length === 1 ? propagators[0]! : new CompositePropagator({ propagators });
}
