/**
 * Cross-references between the files the compose stack is made of. No Docker engine runs here,
 * so what `docker compose up` would discover at run time (a missing mount, an unpinned image, a
 * collector pipeline naming an undefined component, a port that differs between two files, a
 * dashboard pointing at a datasource that is not provisioned) is checked from the files.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allPanels, at, dashboardFiles, readJson, readYaml } from './helpers.js';

const compose = readYaml('compose.yaml');
const services: Record<string, any> = compose.services;
const collector = readYaml('otel-collector/config.yaml');
const tempo = readYaml('tempo/tempo.yaml');
const prom = readYaml('prometheus/prometheus.yml');
const datasources: any[] = readYaml('grafana/provisioning/datasources/datasources.yaml').datasources;
const providers: any[] = readYaml('grafana/provisioning/dashboards/dashboards.yaml').providers;
const gatewayConfig = readYaml('stack/gateway.yaml');
const pkg = readJson('package.json');
const dockerfile = readFileSync(at('Dockerfile'), 'utf8');

const portOf = (endpoint: string) => Number(endpoint.split(':').pop());
const hostOf = (endpoint: string) => endpoint.replace(/^\w+:\/\//, '').split(/[:/]/)[0]!;
const nodeServices = Object.keys(services).filter((s) => services[s].build);
const env = (service: string): Record<string, string> => services[service].environment ?? {};
const envVar = (service: string, name: string): string => {
  const v = env(service)[name];
  if (v === undefined) throw new Error(`${service}: ${name} is not set`);
  return v;
};

/** Bind mounts as [source relative to the repo, target in the container]. */
function binds(service: string): Array<[string, string]> {
  return (services[service].volumes ?? [])
    .map((v: string) => v.split(':'))
    .filter(([src]: string[]) => src!.startsWith('./'))
    .map(([src, target]: string[]) => [src!.slice(2), target!]);
}
/** The container path a repository file or directory is mounted at. */
function mountTarget(service: string, repoPath: string): string {
  for (const [src, target] of binds(service)) {
    if (src === repoPath) return target;
    if (repoPath.startsWith(`${src}/`)) return posix.join(target, repoPath.slice(src.length + 1));
  }
  throw new Error(`${service} does not mount ${repoPath}`);
}
function flagValue(args: string[], flag: string): string {
  const hit = args.find((a) => a.startsWith(`${flag}=`));
  if (!hit) throw new Error(`no ${flag}= in ${args.join(' ')}`);
  return hit.slice(flag.length + 1);
}
function jobTargets(job: string): string[] {
  const sc = prom.scrape_configs.find((j: any) => j.job_name === job);
  if (!sc) throw new Error(`no scrape job ${job}`);
  return sc.static_configs.flatMap((s: any) => s.targets);
}

describe('compose.yaml', () => {
  it('pins every image to an exact version, and builds the Node image from the pinned node version', () => {
    const nodeVersion = String(pkg.devDependencies.node).replace(/^[\^~]/, '');
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toBe(`node:${nodeVersion}-bookworm-slim`);
    for (const [name, s] of Object.entries(services)) {
      if (s.build) {
        expect(s.image, `${name}: the locally built image`).toBe('tracing-gateway:local');
        continue;
      }
      expect(s.image, `${name} has an image`).toBeTruthy();
      // repository:tag with an exact version (x.y.z, optional v prefix and -variant), or a digest.
      expect(s.image, name).toMatch(/^[a-z0-9./_-]+(:v?\d+\.\d+\.\d+(-[a-z0-9.]+)?|@sha256:[0-9a-f]{64})$/);
      expect(s.image).not.toMatch(/:latest$/);
    }
  });

  it('mounts only files and directories that exist, and declares every named volume it uses', () => {
    const named = new Set(Object.keys(compose.volumes));
    const used = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const [src] = String(v).split(':');
        if (src!.startsWith('./')) expect(existsSync(at(src!)), `${name}: ${src} exists`).toBe(true);
        else {
          expect(named.has(src!), `${name}: volume ${src} is declared`).toBe(true);
          used.add(src!);
        }
      }
    }
    expect([...used].sort()).toEqual([...named].sort());
    // Data that must survive a restart lives in named volumes.
    expect(services.prometheus.volumes).toContain('prometheus-data:/prometheus');
    expect(services.grafana.volumes).toContain('grafana-data:/var/lib/grafana');
    expect(services.tempo.volumes).toContain('tempo-data:/var/tempo');
  });

  it('publishes only the user-facing ports, on localhost', () => {
    const published = Object.entries(services).filter(([, s]) => s.ports).map(([n]) => n).sort();
    expect(published).toEqual(['gateway', 'grafana', 'prometheus']);
    expect(services.gateway.ports).toEqual([`127.0.0.1:8080:${gatewayConfig.listen.port}`]);
    expect(services.grafana.ports).toEqual(['127.0.0.1:3000:3000']);
    expect(services.prometheus.ports).toEqual(['127.0.0.1:9090:9090']);
  });

  it('gives every long-running service a healthcheck, and every dependency a condition that can be met', () => {
    const oneShot = Object.keys(services).filter((n) => services[n].restart === 'no');
    expect(oneShot).toEqual(['healthcheck-tools']);
    for (const [name, s] of Object.entries(services)) {
      if (oneShot.includes(name) || name === 'loadgen') continue;
      expect(s.healthcheck?.test, `${name} has a healthcheck`).toBeDefined();
      expect(s.healthcheck.test[0]).toBe('CMD');
      // Images without a shell: the healthcheck runs the busybox copied into the shared volume.
      if (s.healthcheck.test[1] === '/hc/busybox') {
        expect(s.volumes).toContain('healthcheck-bin:/hc:ro');
        expect(s.depends_on?.['healthcheck-tools']?.condition).toBe('service_completed_successfully');
      } else {
        expect(s.healthcheck.test[1], `${name}: a Node service checks itself with node`).toBe('node');
      }
    }
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, spec] of Object.entries<any>(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on an existing service ${dep}`).toBeDefined();
        if (oneShot.includes(dep)) expect(spec.condition).toBe('service_completed_successfully');
        else {
          expect(spec.condition, `${name} → ${dep}`).toBe('service_healthy');
          expect(services[dep].healthcheck, `${dep} has the healthcheck ${name} waits for`).toBeDefined();
        }
      }
    }
    expect(services.loadgen.profiles).toEqual(['load']);
  });

  it('health checks probe the ports the services really serve their health on', () => {
    const url = (name: string) => services[name].healthcheck.test.find((a: string) => a.startsWith('http'));
    expect(portOf(new URL(url('otel-collector')).host)).toBe(portOf(collector.extensions.health_check.endpoint));
    expect(new URL(url('tempo')).port).toBe(String(tempo.server.http_listen_port));
    expect(new URL(url('tempo')).pathname).toBe('/ready');
    expect(new URL(url('prometheus')).pathname).toBe('/-/ready');
    expect(new URL(url('grafana')).pathname).toBe('/api/health');
    for (const n of nodeServices) {
      const script = services[n].healthcheck?.test?.[3];
      if (n === 'loadgen') continue;
      const port = n === 'gateway' ? gatewayConfig.listen.port : Number(env(n).SERVICE_PORT);
      expect(script, n).toContain(`http://127.0.0.1:${port}/health`);
    }
  });

  it('runs the gateway as the Dockerfile does, with the config it mounts', () => {
    const cmd = JSON.parse(/^CMD\s+(\[.*\])$/m.exec(dockerfile)![1]!);
    expect(services.gateway.command).toEqual(cmd);
    // The SDK is loaded with --import before the gateway (after any V8 flags).
    expect(cmd.slice(cmd.indexOf('--import'), cmd.indexOf('--import') + 3)).toEqual(['--import', './dist/src/telemetry/register.js', 'dist/src/main.js']);
    expect(/^USER\s+(\S+)$/m.exec(dockerfile)![1]).not.toMatch(/^(root|0)$/);
    const configPath = cmd[cmd.indexOf('--config') + 1];
    expect(mountTarget('gateway', 'stack/gateway.yaml')).toBe(configPath);
    // Each Node service runs a compiled entry point that exists in src/.
    for (const n of nodeServices) {
      const script: string = services[n].command.filter((a: string) => a.endsWith('.js')).pop();
      expect(statSync(at(script.replace(/^\.\//, '').replace(/^dist\//, '').replace(/\.js$/, '.ts'))).isFile(), `${n}: ${script}`).toBe(true);
    }
  });

  it('wires the gateway to the demo services, and the demo services to each other, on the ports they listen on', async () => {
    // The real loader validates the compose gateway config.
    const { loadConfig } = await import(pathToFileURL(at('dist/src/config/load.js')).href);
    const loaded = loadConfig(at('stack/gateway.yaml'), {});
    expect(Object.keys(loaded.upstreams).sort()).toEqual(['inventory', 'orders', 'users']);
    for (const [name, u] of Object.entries<{ url: string; healthPath?: string }>(loaded.upstreams)) {
      const url = new URL(u.url);
      expect(services[url.hostname], `upstream ${name} is a compose service`).toBeDefined();
      expect(url.port).toBe(env(url.hostname).SERVICE_PORT);
      expect(u.healthPath).toBe('/health');
      expect(services.gateway.depends_on[url.hostname].condition).toBe('service_healthy');
    }
    for (const n of ['users', 'orders', 'inventory']) {
      expect(env(n).OTEL_SERVICE_NAME).toBe(n);
      for (const d of (env(n).DOWNSTREAM_URLS ?? '').split(',').filter(Boolean)) {
        const url = new URL(d);
        expect(services[url.hostname], `${n} → ${d}`).toBeDefined();
        expect(url.port).toBe(env(url.hostname).SERVICE_PORT);
        expect(services[n].depends_on[url.hostname].condition).toBe('service_healthy');
      }
    }
    const target = new URL(envVar('loadgen', 'TARGET_URL'));
    expect(target.hostname).toBe('gateway');
    expect(Number(target.port)).toBe(gatewayConfig.listen.port);
  });
});

describe('OTLP endpoints and ports agree across compose, the collector, Tempo and Prometheus', () => {
  it('every Node service sends OTLP/HTTP to the collector port the otlp receiver listens on', () => {
    const httpEndpoint = collector.receivers.otlp.protocols.http.endpoint;
    expect(hostOf(httpEndpoint)).toBe('0.0.0.0');
    expect(hostOf(collector.receivers.otlp.protocols.grpc.endpoint)).toBe('0.0.0.0');
    for (const n of nodeServices) {
      const endpoint = new URL(envVar(n, 'OTEL_EXPORTER_OTLP_ENDPOINT'));
      expect(endpoint.hostname, n).toBe('otel-collector');
      expect(Number(endpoint.port), n).toBe(portOf(httpEndpoint));
    }
    expect(env('gateway').OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://otel-collector:4318');
    expect(env('gateway').OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').toBe('http/protobuf');
  });

  it('the collector exports traces to the port Tempo receives OTLP/gRPC on', () => {
    const exp = collector.exporters['otlp_grpc/tempo'];
    expect(hostOf(exp.endpoint)).toBe('tempo');
    expect(services.tempo).toBeDefined();
    expect(portOf(exp.endpoint)).toBe(portOf(tempo.distributor.receivers.otlp.protocols.grpc.endpoint));
    expect(hostOf(tempo.distributor.receivers.otlp.protocols.grpc.endpoint)).toBe('0.0.0.0');
    expect(exp.tls.insecure).toBe(true);
  });

  it('Prometheus scrapes every service on the port it serves metrics on', () => {
    expect(jobTargets('gateway')).toEqual([`gateway:${gatewayConfig.listen.port}`]);
    expect(jobTargets('demo-services').sort()).toEqual(['inventory', 'orders', 'users'].map((n) => `${n}:${env(n).SERVICE_PORT}`).sort());
    const reader = collector.service.telemetry.metrics.readers[0].pull.exporter.prometheus;
    expect(reader.host).toBe('0.0.0.0');
    expect(jobTargets('otel-collector')).toEqual([`otel-collector:${reader.port}`]);
    expect(jobTargets('otel-collector-spanmetrics')).toEqual([`otel-collector:${portOf(collector.exporters.prometheus.endpoint)}`]);
    expect(hostOf(collector.exporters.prometheus.endpoint)).toBe('0.0.0.0');
    // The collector's prometheus exporter sets job/instance from the resource: keep them.
    expect(prom.scrape_configs.find((j: any) => j.job_name === 'otel-collector-spanmetrics').honor_labels).toBe(true);
    expect(jobTargets('tempo')).toEqual([`tempo:${tempo.server.http_listen_port}`]);
    expect(jobTargets('prometheus')).toEqual(['localhost:9090']);
    for (const j of prom.scrape_configs) for (const t of j.static_configs.flatMap((s: any) => s.targets)) {
      if (t !== 'localhost:9090') expect(services[hostOf(t)], `${j.job_name}: ${t} is a compose service`).toBeDefined();
    }
  });

  it('Prometheus loads its config and rules from where compose mounts them, with exemplar storage on', () => {
    const cmd: string[] = services.prometheus.command;
    const configPath = flagValue(cmd, '--config.file');
    expect(mountTarget('prometheus', 'prometheus/prometheus.yml')).toBe(configPath);
    for (const pattern of prom.rule_files) {
      expect(pattern.startsWith('/'), 'rule_files are relative to the config file').toBe(false);
      const dir = posix.dirname(pattern);
      expect(mountTarget('prometheus', posix.join('prometheus', dir))).toBe(posix.join(dirname(configPath), dir));
    }
    expect(cmd).toContain('--enable-feature=exemplar-storage');
    expect(mountTarget('otel-collector', 'otel-collector/config.yaml')).toBe(flagValue(services['otel-collector'].command, '--config'));
    expect(mountTarget('tempo', 'tempo/tempo.yaml')).toBe(flagValue(services.tempo.command, '-config.file'));
  });
});

describe('otel-collector/config.yaml', () => {
  const kinds = ['receivers', 'processors', 'exporters', 'connectors', 'extensions'] as const;
  const defined = Object.fromEntries(kinds.map((k) => [k, new Set(Object.keys(collector[k] ?? {}))]));
  const pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> = collector.service.pipelines;

  it('pipelines reference only defined components, and every defined component is used', () => {
    const used = new Set<string>();
    for (const [name, p] of Object.entries(pipelines)) {
      expect(name).toMatch(/^(traces|metrics|logs)(\/[\w-]+)?$/);
      for (const r of p.receivers) expect(defined.receivers!.has(r) || defined.connectors!.has(r), `${name}: receiver ${r}`).toBe(true);
      for (const x of p.processors ?? []) expect(defined.processors!.has(x), `${name}: processor ${x}`).toBe(true);
      for (const e of p.exporters) expect(defined.exporters!.has(e) || defined.connectors!.has(e), `${name}: exporter ${e}`).toBe(true);
      [...p.receivers, ...(p.processors ?? []), ...p.exporters].forEach((c) => used.add(c));
    }
    for (const e of collector.service.extensions) expect(defined.extensions!.has(e), `extension ${e}`).toBe(true);
    for (const k of ['receivers', 'processors', 'exporters', 'connectors'] as const) for (const c of defined[k]!) expect(used.has(c), `${k}.${c} is used`).toBe(true);
    for (const c of defined.extensions!) expect(collector.service.extensions).toContain(c);
  });

  it('connectors join a traces pipeline to a metrics pipeline', () => {
    for (const c of defined.connectors!) {
      const into = Object.entries(pipelines).filter(([, p]) => p.exporters.includes(c)).map(([n]) => n);
      const outOf = Object.entries(pipelines).filter(([, p]) => p.receivers.includes(c)).map(([n]) => n);
      expect(into.length && into.every((n) => n.startsWith('traces')), `${c} is fed by a traces pipeline`).toBeTruthy();
      expect(outOf.length && outOf.every((n) => n.startsWith('metrics')), `${c} feeds a metrics pipeline`).toBeTruthy();
    }
  });

  it('uses the 0.159 component names, with memory_limiter first and batch in every pipeline', () => {
    const type = (id: string) => id.split('/')[0]!;
    const all = kinds.flatMap((k) => [...defined[k]!].map(type));
    // Renamed or removed: otlp→otlp_grpc and otlphttp→otlp_http (exporters), spanmetrics→span_metrics,
    // servicegraph→service_graph, logging→debug.
    for (const old of ['otlphttp', 'spanmetrics', 'servicegraph', 'logging']) expect(all).not.toContain(old);
    expect([...defined.exporters!].map(type)).not.toContain('otlp');
    for (const [name, p] of Object.entries(pipelines)) {
      expect(p.processors?.[0], `${name}: memory_limiter first`).toBe('memory_limiter');
      expect(p.processors, name).toContain('batch');
    }
    const ml = collector.processors.memory_limiter;
    expect(ml.check_interval).toMatch(/^[1-9]\d*(ms|s)$/);
    expect(ml.limit_mib ?? ml.limit_percentage).toBeGreaterThan(0);
  });

  it('computes span metrics in seconds with exemplars, on the dimensions the dashboards use', () => {
    const sm = collector.connectors.span_metrics;
    expect(sm.histogram.unit).toBe('s');
    expect(sm.exemplars.enabled).toBe(true);
    expect(sm.namespace ?? 'traces.span.metrics').toBe('traces.span.metrics');
    expect(sm.dimensions.map((d: { name: string }) => d.name)).toEqual(expect.arrayContaining(['http.route', 'http.request.method', 'http.response.status_code', 'gateway.upstream']));
    expect(collector.exporters.prometheus.enable_open_metrics).toBe(true);
    expect(collector.extensions.health_check.endpoint).toBe('0.0.0.0:13133');
    // The alert rules use the default self-metric names (no _total / unit suffixes).
    const reader = collector.service.telemetry.metrics.readers[0].pull.exporter.prometheus;
    expect([reader.without_type_suffix, reader.without_units]).toEqual([true, true]);
  });
});

describe('tempo/tempo.yaml', () => {
  it('is a Tempo 3.0 monolithic config: no 2.x blocks, scoped overrides, retention on the backend worker', () => {
    for (const removed of ['ingester', 'ingester_client', 'compactor', 'metrics_generator_client']) expect(tempo[removed], removed).toBeUndefined();
    expect(JSON.stringify(tempo)).not.toMatch(/local_blocks|local-blocks/);
    expect(Object.keys(tempo.overrides).filter((k) => k !== 'defaults' && k !== 'per_tenant_override_config')).toEqual([]);
    expect(tempo.backend_worker.compaction.block_retention).toMatch(/^\d+h$/);
    expect(tempo.target ?? 'all').toBe('all');
    expect(tempo.storage.trace.backend).toBe('local');
    // Everything Tempo writes is in the tempo-data volume.
    const paths = [tempo.storage.trace.local.path, tempo.storage.trace.wal.path, tempo.live_store.wal.path, tempo.backend_scheduler.local_work_path];
    for (const p of paths) expect(p.startsWith('/var/tempo/')).toBe(true);
    // RED metrics come from the collector: no metrics-generator processors here.
    expect(tempo.overrides.defaults.metrics_generator?.processors ?? []).toEqual([]);
  });
});

describe('Grafana provisioning and dashboards', () => {
  const uids = new Map(datasources.map((d) => [d.uid, d]));
  const promDs = datasources.find((d) => d.type === 'prometheus');
  const tempoDs = datasources.find((d) => d.type === 'tempo');

  it('provisions Prometheus and Tempo with fixed UIDs, linked to each other, at the compose addresses', () => {
    expect(uids.size).toBe(datasources.length);
    expect(new URL(promDs.url).hostname).toBe('prometheus');
    expect(new URL(promDs.url).port).toBe('9090');
    expect(new URL(tempoDs.url).hostname).toBe('tempo');
    expect(Number(new URL(tempoDs.url).port)).toBe(tempo.server.http_listen_port);
    // Exemplars: the collector's span_metrics connector labels them trace_id.
    expect(promDs.jsonData.exemplarTraceIdDestinations).toEqual([expect.objectContaining({ name: 'trace_id', datasourceUid: tempoDs.uid })]);
    expect(tempoDs.jsonData.tracesToMetrics.datasourceUid).toBe(promDs.uid);
    expect(tempoDs.jsonData.serviceMap.datasourceUid).toBe(promDs.uid);
    for (const q of tempoDs.jsonData.tracesToMetrics.queries) expect(q.query, 'escape $__tags as $$__tags in provisioning').toContain('$$__tags');
    if (tempoDs.jsonData.streamingEnabled?.search) expect(tempo.stream_over_http_enabled).toBe(true);
    expect(mountTarget('grafana', 'grafana/provisioning/datasources')).toBe('/etc/grafana/provisioning/datasources');
    expect(mountTarget('grafana', 'grafana/provisioning/dashboards')).toBe('/etc/grafana/provisioning/dashboards');
  });

  it('loads the dashboards from where compose mounts them', () => {
    expect(providers).toHaveLength(1);
    expect(mountTarget('grafana', 'grafana/dashboards')).toBe(providers[0].options.path);
    const home = env('grafana').GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(home).toBe(mountTarget('grafana', 'grafana/dashboards/gateway-overview.json'));
  });

  it('every datasource a dashboard uses is provisioned, and every panel has a description and a unit', () => {
    const files = dashboardFiles();
    expect(files.map((f) => readJson(f).uid).sort()).toEqual(['gateway-overview', 'gateway-upstreams', 'nodejs-runtime', 'telemetry-pipeline']);
    for (const f of files) {
      const d = readJson(f);
      const refs: string[] = [];
      const collect = (ds: any) => ds?.uid && !String(ds.uid).startsWith('-- ') && refs.push(ds.uid);
      for (const v of d.templating.list) collect(v.datasource);
      const ids = new Set<number>();
      for (const p of allPanels(d)) {
        expect(ids.has(p.id), `${d.uid}: unique panel id ${p.id}`).toBe(false);
        ids.add(p.id);
        if (p.type === 'row') continue;
        collect(p.datasource);
        for (const t of p.targets) collect(t.datasource);
        expect(p.description?.length, `${d.uid} / ${p.title}: description`).toBeGreaterThan(20);
        expect(p.fieldConfig?.defaults?.unit, `${d.uid} / ${p.title}: unit`).toBeTruthy();
        expect(p.targets.length, `${d.uid} / ${p.title}: queries`).toBeGreaterThan(0);
        // Where a panel names an SLO or an alert threshold, it draws it.
        if (/SLO|fires/.test(p.description)) expect(p.fieldConfig.defaults.thresholds.steps.length, `${d.uid} / ${p.title}: thresholds`).toBeGreaterThan(1);
        // Exemplars only exist on the span-metrics histograms.
        for (const t of p.targets) if (t.exemplar) expect(t.expr).toContain('traces_span_metrics_duration_seconds_bucket');
      }
      for (const uid of refs) expect(uids.has(uid), `${d.uid} uses datasource ${uid}`).toBe(true);
    }
    const overview = readJson('grafana/dashboards/gateway-overview.json');
    expect(overview.templating.list.map((v: { name: string }) => v.name).sort()).toEqual(['instance', 'route']);
    expect(allPanels(overview).some((p) => p.targets?.some((t: any) => t.exemplar))).toBe(true);
  });

  it('Explore links (dashboards and README) name the Tempo datasource by its UID string', () => {
    const readme = readFileSync(at('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Running the full stack'));
    expect(section.startsWith('## Running the full stack')).toBe(true);
    const links: string[] = [];
    for (const f of dashboardFiles()) for (const l of readJson(f).links) if (String(l.url ?? '').includes('/explore')) links.push(l.url);
    // The literal links in the README (not the node one-liner that builds one).
    links.push(...[...section.matchAll(/http:\/\/localhost:3000\/explore\?\S*panes=(\{|%7B)\S+/g)].map((m) => m[0]));
    expect(links.length).toBeGreaterThanOrEqual(3); // two dashboard links and the README's
    for (const link of links) {
      const raw = new URLSearchParams(link.slice(link.indexOf('?') + 1)).get('panes')!;
      const panes = JSON.parse(raw.startsWith('%7B') ? decodeURIComponent(raw) : raw);
      for (const pane of Object.values<any>(panes)) {
        expect(typeof pane.datasource, link).toBe('string');
        expect(pane.datasource).toBe(tempoDs.uid);
        for (const q of pane.queries) expect(q.datasource.uid).toBe(tempoDs.uid);
      }
    }
    // The pinned-versions table lists exactly the images compose.yaml pins.
    const tableStart = section.indexOf('### Pinned versions');
    const tableEnd = section.indexOf('\n## ', tableStart);
    const table = section.slice(tableStart, tableEnd === -1 ? undefined : tableEnd);
    const pinned = Object.values(services).filter((s) => !s.build).map((s) => s.image).sort();
    const listed = [...table.matchAll(/`([a-z0-9./_-]+:[^`]+)`/g)].map((m) => m[1]!).filter((i) => !i.startsWith('node:')).sort();
    expect(listed).toEqual(pinned);
    expect(table).toContain(`node:${String(pkg.devDependencies.node).replace(/^[\^~]/, '')}-bookworm-slim`);
  });
});
