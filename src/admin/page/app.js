// Trace lookup page. Plain script, no build step. Everything that comes from spans (paths,
// user agents, error messages) is client-controlled: it is only ever set as textContent.
'use strict';

const TOKEN_KEY = 'tracing-gateway.admin-token';
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function formatMs(ms) {
  if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
  if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
  if (ms >= 100) return ms.toFixed(0) + ' ms';
  if (ms >= 10) return ms.toFixed(1) + ' ms';
  return ms.toFixed(2) + ' ms';
}

function setMessage(text, kind) {
  const message = $('message');
  message.textContent = text;
  message.className = kind || '';
  message.hidden = !text;
}

function setReasons(reasons) {
  const list = $('reasons');
  list.replaceChildren(...(reasons || []).map((r) => el('li', '', r)));
  list.hidden = !reasons || reasons.length === 0;
}

function addTerm(dl, term, value, className) {
  dl.append(el('dt', '', term), el('dd', className || '', value));
}

function renderSummary(s) {
  const dl = $('summary');
  dl.replaceChildren();
  const root = s.root;
  const request = (root.method && root.route ? root.method + ' ' + root.route : root.name) + (root.path ? '  (path ' + root.path + ')' : '');
  addTerm(dl, 'Trace ID', s.traceId, 'mono');
  if (s.requestId) addTerm(dl, 'Request ID', s.requestId, 'mono');
  addTerm(dl, 'Request', request);
  addTerm(dl, 'Outcome', (root.status !== undefined ? root.status + ' ' : '') + (root.ok ? 'ok' : 'FAILED'), root.ok ? 'ok' : 'error');
  addTerm(dl, 'Duration', formatMs(root.durationMs));
  addTerm(dl, 'Started', root.startTime);
  addTerm(dl, 'Services', s.services.join(', ') + (s.upstreams.length ? '  (upstreams: ' + s.upstreams.join(', ') + ')' : ''));
  addTerm(dl, 'Spans', s.spanCount + ' (' + s.errorCount + ' with errors)');
  if (s.cause) addTerm(dl, 'Failed at', s.cause.service + ' › ' + s.cause.name + ' (' + s.cause.kind.toLowerCase() + '): ' + s.cause.message, 'error');
  addTerm(dl, 'Source', s.source === 'tempo' ? 'Tempo (all services)' : "this gateway's recent spans (other services' own spans are not included)");
  for (const note of s.notes || []) addTerm(dl, 'Note', note, 'note');
  if (s.otherTraceIds && s.otherTraceIds.length) addTerm(dl, 'Other traces', s.otherTraceIds.join(', '), 'mono');

  const grafana = $('grafana');
  grafana.hidden = !s.grafanaUrl;
  if (s.grafanaUrl && /^https?:\/\//.test(s.grafanaUrl)) {
    $('grafana-url').value = s.grafanaUrl;
    $('grafana-open').href = s.grafanaUrl;
  }
}

function renderDetails(span) {
  const details = $('details');
  details.replaceChildren(el('h2', '', span.name));
  const dl = el('dl');
  addTerm(dl, 'Service', span.service);
  addTerm(dl, 'Kind', span.kind);
  addTerm(dl, 'Status', (span.httpStatus !== undefined ? span.httpStatus + ' ' : '') + span.status, span.status === 'ERROR' ? 'error' : '');
  if (span.error) addTerm(dl, 'Error', span.error, 'error');
  addTerm(dl, 'Starts at', '+' + formatMs(span.startOffsetMs));
  addTerm(dl, 'Duration', formatMs(span.durationMs));
  addTerm(dl, 'Span ID', span.spanId, 'mono');
  addTerm(dl, 'Parent span ID', span.parentSpanId || '(none: root of what is shown)', 'mono');
  for (const [key, value] of Object.entries(span.attributes)) addTerm(dl, key, value, 'mono');
  details.append(dl);
  details.hidden = false;
}

function renderWaterfall(s) {
  const table = $('waterfall');
  const total = s.durationMs || 1;
  const header = el('div', 'row head');
  header.setAttribute('role', 'row');
  for (const [cls, text] of [['name', 'Span'], ['track', '0 → ' + formatMs(s.durationMs)], ['dur', 'Duration'], ['status', 'Status']]) {
    const cell = el('div', cls, text);
    cell.setAttribute('role', 'columnheader');
    header.append(cell);
  }
  const rows = s.spans.map((span) => {
    const row = el('div', 'row span' + (span.status === 'ERROR' ? ' error' : ''));
    row.setAttribute('role', 'row');
    row.tabIndex = 0;
    row.dataset.kind = span.kind;
    row.dataset.status = span.status;
    row.dataset.depth = String(span.depth);
    row.dataset.spanId = span.spanId;

    const name = el('div', 'name');
    name.setAttribute('role', 'cell');
    name.style.paddingLeft = 0.4 + span.depth * 1.2 + 'em';
    name.append(el('span', 'op', span.name), el('span', 'kind', span.kind), el('span', 'svc', span.service));
    if (span.error) name.append(el('span', 'err', span.error));

    const track = el('div', 'track');
    track.setAttribute('role', 'cell');
    const bar = el('div', 'bar');
    bar.style.left = Math.min(99.5, (span.startOffsetMs / total) * 100) + '%';
    bar.style.width = Math.max(0.5, (span.durationMs / total) * 100) + '%';
    bar.title = '+' + formatMs(span.startOffsetMs) + ', ' + formatMs(span.durationMs);
    track.append(bar);

    const dur = el('div', 'dur', formatMs(span.durationMs));
    dur.setAttribute('role', 'cell');
    const status = el('div', 'status', (span.httpStatus !== undefined ? span.httpStatus + ' ' : '') + (span.status === 'ERROR' ? 'ERROR' : 'ok'));
    status.setAttribute('role', 'cell');
    row.append(name, track, dur, status);

    const select = () => {
      for (const r of table.querySelectorAll('.row.selected')) r.classList.remove('selected');
      row.classList.add('selected');
      renderDetails(span);
    };
    row.addEventListener('click', select);
    row.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        select();
      }
    });
    return row;
  });
  table.replaceChildren(header, ...rows);
  $('details').hidden = true;
}

async function lookup(id) {
  const token = $('token').value.trim();
  if (!token || !id) return;
  // Kept for this tab only (sessionStorage), so a reload does not ask again; never in the URL.
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, '', '#id=' + encodeURIComponent(id));
  setMessage('Looking up ' + id + '…', 'busy');
  setReasons([]);
  $('result').hidden = true;
  $('submit').disabled = true;
  try {
    let res;
    try {
      res = await fetch('lookup/' + encodeURIComponent(id), {
        headers: { authorization: 'Bearer ' + token, accept: 'application/json' },
        cache: 'no-store',
      });
    } catch {
      setMessage('The admin API could not be reached. Is the gateway running?', 'error');
      return;
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      setMessage(body.message || 'The lookup failed (HTTP ' + res.status + ').', 'error');
      setReasons(body.reasons);
      return;
    }
    setMessage('', '');
    renderSummary(body);
    renderWaterfall(body);
    $('result').hidden = false;
  } finally {
    $('submit').disabled = false;
  }
}

async function copyGrafanaLink() {
  const input = $('grafana-url');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // The Clipboard API needs a secure context; plain http on another host falls back to selection.
    input.select();
    document.execCommand('copy');
  }
  $('copy').textContent = 'Copied';
  setTimeout(() => ($('copy').textContent = 'Copy'), 1500);
}

document.addEventListener('DOMContentLoaded', () => {
  $('token').value = sessionStorage.getItem(TOKEN_KEY) || '';
  $('lookup').addEventListener('submit', (e) => {
    e.preventDefault();
    void lookup($('id').value.trim());
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
  });
  $('copy').addEventListener('click', () => void copyGrafanaLink());
  // A shared link (#id=…) looks the trace up at once when this tab already has the token.
  const fromHash = () => {
    const id = new URLSearchParams(location.hash.slice(1)).get('id');
    if (!id) return;
    $('id').value = id;
    if ($('token').value) void lookup(id);
  };
  window.addEventListener('hashchange', fromHash);
  fromHash();
});
