// The SDK components the standard OTEL_* variables describe (sampler, span limits, resource),
// built from the SDK's own samplers and resource detectors. `@opentelemetry/sdk-node` would do
// the same, but loading it also loads the gRPC, Zipkin and log exporters the gateway never uses
// (≈ 7 MB of resident memory).
import { getNumberFromEnv, getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core';
import {
  defaultResource,
  detectResources,
  hostDetector,
  osDetector,
  processDetector,
  resourceAttributesEnvDetector,
  serviceInstanceIdDetector,
  serviceNameEnvDetector,
  type Resource,
  type ResourceDetector,
} from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler, type SpanLimits } from '@opentelemetry/sdk-trace';

type Warn = (message: string) => void;

function ratioFromEnv(warn: Warn): number {
  const ratio = getNumberFromEnv('OTEL_TRACES_SAMPLER_ARG');
  if (ratio === undefined) {
    warn('OTEL_TRACES_SAMPLER_ARG is not set: sampling ratio 1');
    return 1;
  }
  if (ratio < 0 || ratio > 1) {
    warn(`OTEL_TRACES_SAMPLER_ARG: ${ratio} is outside [0, 1]; sampling ratio 1`);
    return 1;
  }
  return ratio;
}

/** OTEL_TRACES_SAMPLER (+ OTEL_TRACES_SAMPLER_ARG); the SDK default, parentbased_always_on, when unset or unknown. */
export function samplerFromEnv(warn: Warn): Sampler {
  const name = getStringFromEnv('OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on';
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratioFromEnv(warn));
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratioFromEnv(warn)) });
    case 'parentbased_always_on':
      break;
    default:
      warn(`OTEL_TRACES_SAMPLER: "${name}" is not supported (supported: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio); using parentbased_always_on`);
  }
  return new ParentBasedSampler({ root: new AlwaysOnSampler() });
}

/**
 * OTEL_SPAN_* / OTEL_ATTRIBUTE_* limits; unset ones keep the SDK defaults, except that attribute
 * values are cut at 2048 characters unless a length limit is set: some come from clients (paths,
 * user agents).
 */
export function spanLimitsFromEnv(): SpanLimits {
  // Unset ones stay undefined: the SDK's provider and the gateway's tracer both read that as "default".
  return {
    attributeCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT'),
    attributeValueLengthLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT') ?? 2048,
    eventCountLimit: getNumberFromEnv('OTEL_SPAN_EVENT_COUNT_LIMIT'),
    linkCountLimit: getNumberFromEnv('OTEL_SPAN_LINK_COUNT_LIMIT'),
    attributePerEventCountLimit: getNumberFromEnv('OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT'),
    attributePerLinkCountLimit: getNumberFromEnv('OTEL_LINK_ATTRIBUTE_COUNT_LIMIT'),
  };
}

const DETECTORS: Record<string, ResourceDetector[]> = {
  service: [serviceInstanceIdDetector],
  host: [hostDetector, osDetector],
  process: [processDetector],
};

/**
 * The process's resource: the SDK default (telemetry.sdk.*, service.name), what the detectors named
 * by OTEL_NODE_RESOURCE_DETECTORS find (default `service,host,process`; `all`, `none`), then
 * OTEL_RESOURCE_ATTRIBUTES over those, then OTEL_SERVICE_NAME over everything.
 */
export function resourceFromEnv(warn: Warn): Resource {
  let names = getStringListFromEnv('OTEL_NODE_RESOURCE_DETECTORS')?.map((n) => n.toLowerCase()) ?? [];
  if (names.length === 0 || names.includes('all')) names = Object.keys(DETECTORS);
  else if (names.includes('none')) names = [];
  const detectors: ResourceDetector[] = [];
  for (const name of new Set(names)) {
    const found = DETECTORS[name];
    if (found) detectors.push(...found);
    else warn(`OTEL_NODE_RESOURCE_DETECTORS: "${name}" is not supported (supported: service, host, process, all, none)`);
  }
  // Later detectors win: what the operator set beats what was detected.
  detectors.push(resourceAttributesEnvDetector, serviceNameEnvDetector);
  return defaultResource().merge(detectResources({ detectors }));
}
