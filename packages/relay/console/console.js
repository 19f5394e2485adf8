// The Switchboard relay console: plain ES modules and the browser's own APIs (fetch, EventSource,
// DOM), no framework and nothing fetched from elsewhere. Every value from the relay goes into the
// page as text (textContent), never as HTML: a tool description is written by a server and may be
// hostile.

const $ = (id) => document.getElementById(id);

/** h builds an element: h('td', { class: 'x' }, 'text', child, …). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function short(hash) {
  return typeof hash === 'string' ? hash.slice(0, 12) : '–';
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}

function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
}

function dl(el, rows) {
  replace(el, rows.flatMap(([k, v, cls]) => [h('dt', {}, k), h('dd', { class: cls }, v)]));
}

const token = {
  get: () => sessionStorage.getItem('switchboard-admin-token') ?? '',
  set: (v) => sessionStorage.setItem('switchboard-admin-token', v),
};

let inventory = null;

async function approve(server, tool, button) {
  button.disabled = true;
  const res = await fetch('/v1/tools/approve', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(inventory?.access?.approve === 'token' ? { authorization: `Bearer ${token.get()}` } : {}) },
    body: JSON.stringify({ server, tools: [tool] }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    button.disabled = false;
    button.after(h('span', { class: 'error', 'data-testid': 'approve-error' }, ` ${body.error ?? res.status}`));
    return;
  }
  await refresh();
}

function toolRow(server, t) {
  const badge = h('span', { class: `badge ${t.state}`, 'data-testid': 'tool-state' }, t.state);
  const rule = t.deniedBy.length > 0
    ? h('span', { class: 'policy deny', 'data-testid': 'tool-policy' }, `denied by ${t.deniedBy.join(', ')}`)
    : t.allowedBy.length > 0
      ? h('span', { class: 'policy allow', 'data-testid': 'tool-policy' }, `allowed by ${t.allowedBy.join(', ')}`)
      : h('span', { class: 'policy none', 'data-testid': 'tool-policy' }, 'no rule allows it');
  const cells = [h('td', { class: 'name' }, t.name), h('td', {}, badge), h('td', {}, rule), h('td', { class: 'desc' }, t.description ?? '')];
  const waiting = t.state === 'drifted' || t.state === 'pending' || t.state === 'unapproved';
  const extra = [];
  if (waiting) {
    const parts = [h('div', { class: 'muted' }, `pinned ${short(t.hash)} → seen ${short(t.seenHash)}${t.seenAt ? ` (${ago(t.seenAt)})` : ''}`)];
    for (const c of t.changes ?? []) {
      parts.push(h('div', { class: 'diff', 'data-testid': 'tool-diff' }, h('span', { class: 'field' }, c.field), h('del', {}, c.pinned), h('ins', {}, c.seen)));
    }
    if (inventory?.access?.approve !== 'no') {
      const b = h('button', { type: 'button', 'data-testid': `approve-${t.name}`, onclick: () => approve(server, t.name, b) }, 'Approve');
      parts.push(b);
    }
    extra.push(h('tr', { class: 'pending-row' }, h('td', {}), h('td', { colspan: 3 }, parts)));
  } else if (t.hash) {
    cells[3].append(h('span', { class: 'muted hash' }, ` ${short(t.hash)}`));
  }
  return [h('tr', { 'data-testid': `tool-${t.name}`, 'data-state': t.state }, cells), ...extra];
}

function serverCard(s) {
  const labels = Object.entries(s.labels).map(([k, v]) => h('span', { class: 'label' }, `${k}=${v}`));
  const connectors = s.connectors.length === 0 ? h('span', { class: 'muted' }, 'no connector') : s.connectors.map((c) => h('div', { class: 'connector' }, c.id, h('span', { class: 'muted' }, ` link ${c.linkId}, ${c.sessions} session${c.sessions === 1 ? '' : 's'}`)));
  const tools = s.tools.length === 0
    ? h('p', { class: 'muted' }, s.toolsSeenAt ? 'the server lists no tools' : 'no tools/list seen yet')
    : h('table', { class: 'tools' }, h('tbody', {}, s.tools.flatMap((t) => toolRow(s.name, t))));
  return h('article', { class: `server ${s.online ? 'online' : 'offline'}`, 'data-testid': `server-${s.name}` },
    h('h3', {}, s.name, ' ', h('span', { class: `badge ${s.online ? 'online' : 'offline'}`, 'data-testid': 'server-status' }, s.online ? 'online' : 'offline'),
      s.zone ? h('span', { class: 'label' }, `zone ${s.zone}`) : null, labels),
    h('div', { class: 'meta' }, h('span', { class: 'muted' }, `pinning ${s.pinning} · ${s.sessions} live session${s.sessions === 1 ? '' : 's'}${s.toolsSeenAt ? ` · tools seen ${ago(s.toolsSeenAt)}` : ''}`)),
    h('div', { class: 'connectors' }, connectors),
    tools);
}

function render(inv) {
  inventory = inv;
  replace($('relay'), h('code', {}, inv.relay.id), ` · up since ${new Date(inv.relay.startedAt).toLocaleString()}`);
  const a = inv.audit;
  replace($('health'), h('span', { class: `badge ${a.available ? 'online' : 'offline'}`, 'data-testid': 'trail-health' }, a.available ? 'audit trail ok' : 'audit trail FAILED'));
  $('server-count').textContent = `${inv.servers.filter((s) => s.online).length} of ${inv.servers.length} online`;
  replace($('servers'), inv.servers.map(serverCard));
  $('session-count').textContent = String(inv.sessions.length);
  replace($('sessions'), inv.sessions.length === 0
    ? h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'no session open'))
    : inv.sessions.map((s) => h('tr', { 'data-testid': `session-${s.sessionId}` }, h('td', {}, s.agent), h('td', {}, s.server), h('td', { class: 'muted' }, s.connector), h('td', {}, ago(s.since)), h('td', {}, s.calls), h('td', {}, s.denials))));
  const c = inv.counts;
  replace($('counters'), [
    ['allowed', c.allowed], ['denied', c.denied], ['rate-limit trips', c.rateLimited], ['egress denials', c.egressDenied], ['drifts', c.drifts],
  ].map(([k, v]) => h('div', { class: 'counter', 'data-testid': `count-${k.replace(/ /g, '-')}` }, h('strong', {}, v), ` ${k}`)));
  dl($('audit'), [
    ['state', a.available ? 'recording' : 'failed: recorded calls are refused (-32050)', a.available ? '' : 'error'],
    ['durability', a.durability],
    ['file', a.path ?? '(not a trail file)'],
    ['signed checkpoints', a.signed ? `yes (${a.checkpoints} since start)` : 'no: a truncated tail cannot be detected', a.signed ? '' : 'error'],
    ['last seq / on disk', `${a.lastSeq} / ${a.durableSeq}`],
    ['last checkpoint', a.lastCheckpoint ? `covers seq ${a.lastCheckpoint.coversSeq}, ${ago(a.lastCheckpoint.time)}` : a.signed ? 'none since start (every 1000 records or 60 s)' : '—'],
    ['last verified', a.lastVerify ? `${a.lastVerify.ok ? 'OK' : 'FAILED'}: ${a.lastVerify.message} (${ago(a.lastVerify.at)})` : 'not yet', a.lastVerify && !a.lastVerify.ok ? 'error' : ''],
  ]);
  const p = inv.policy;
  dl($('policy'), [
    ['file', p.source ?? '(given in code)'],
    ['digest', h('code', { 'data-testid': 'policy-digest' }, p.digest)],
    ['loaded', `${new Date(p.loadedAt).toLocaleString()} (${ago(p.loadedAt)})`],
    ['contents', `${p.servers} servers, ${p.rules} rules, ${p.revoked} revocations`],
    ...p.warnings.map((w) => ['warning', w, 'error']),
  ]);
  const access = inv.access ?? { via: 'loopback', id: null, approve: c.approvalsEnabled ? 'token' : 'no' };
  $('admin-note').textContent = access.approve === 'token'
    ? 'Approvals are on: paste the admin token (relay.yaml admin.tokenFile) to approve drifted tools.'
    : access.approve === 'identity'
      ? `Signed in by client certificate as ${access.id} (admin.mtls.admins): approvals are recorded under this identity.`
      : access.via === 'mtls'
        ? `Signed in by client certificate as ${access.id}: a viewer, read-only (admin.mtls.viewers).`
        : 'Read-only: approvals from the console are off (set admin.tokenFile in relay.yaml). `switchboard tools approve` still works.';
  $('token-field').hidden = access.approve !== 'token';
}

function describe(e) {
  switch (e.type) {
    case 'request':
      return e.decision === 'deny'
        ? [h('span', { class: 'badge deny' }, 'denied'), ` ${e.agent} → ${e.server} ${e.method}${e.name ? ` ${e.name}` : ''}: ${e.reason}`]
        : [h('span', { class: 'badge allow' }, 'allowed'), ` ${e.agent} → ${e.server} ${e.method}${e.name ? ` ${e.name}` : ''}${e.ruleId ? ` (rule ${e.ruleId})` : ''}`];
    case 'egress.denied':
      return [h('span', { class: 'badge deny' }, 'egress denied'), ` ${e.server} → ${e.destination}:${e.port} (${e.reason}) for ${e.agent}`];
    case 'session.open':
    case 'session.resume':
      return [h('span', { class: 'badge info' }, e.type === 'session.open' ? 'session' : 'resumed'), ` ${e.agent} → ${e.server} (${e.sessionId})`];
    case 'session.close':
      return [h('span', { class: 'badge info' }, 'closed'), ` ${e.agent} → ${e.server} (${e.sessionId}) code ${e.code}`];
    case 'pin.drift':
      return [h('span', { class: 'badge drifted' }, 'drift'), ` ${e.server} ${e.kind} ${e.name}: ${short(e.pinnedHash)} → ${short(e.observedHash)}`];
    case 'pin.approve':
      return [h('span', { class: 'badge pinned' }, 'approved'), ` ${e.server} ${e.kind} ${e.name} by ${e.approvedBy}`];
    case 'link.up':
      return [h('span', { class: 'badge online' }, 'link up'), ` ${e.connector} serving ${(e.servers ?? []).join(', ')}`];
    case 'link.down':
      return [h('span', { class: 'badge offline' }, 'link down'), ` ${e.connector} (code ${e.code})`];
    case 'policy.reload':
      return [h('span', { class: 'badge info' }, 'policy'), e.accepted ? ` reloaded ${e.file}` : ` reload refused: ${e.error}`];
    case 'revocation':
      return [h('span', { class: 'badge deny' }, 'revoked'), ` ${e.subject ?? e.certSerial}: ${e.sessionsClosed} sessions closed`];
    case 'connection.refused':
      return [h('span', { class: 'badge deny' }, 'refused'), ` ${e.peer ?? e.remote} ${e.path}: ${e.reason}`];
    default:
      return [h('span', { class: 'badge info' }, e.type)];
  }
}

const MAX_STREAM = 200;
let refreshTimer;

function onEvent(e) {
  const li = h('li', { 'data-testid': 'event', 'data-type': e.type, 'data-decision': e.decision }, h('time', { datetime: e.time }, new Date(e.time).toLocaleTimeString()), ' ', describe(e));
  const list = $('stream');
  list.prepend(li);
  while (list.childElementCount > MAX_STREAM) list.lastElementChild.remove();
  // What changes the inventory shows up in it soon after; coalesce bursts into one fetch.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

async function refresh() {
  try {
    const res = await fetch('/v1/inventory', { cache: 'no-store' });
    if (!res.ok) throw new Error(`${res.status}`);
    render(await res.json());
  } catch (err) {
    replace($('health'), h('span', { class: 'badge offline' }, `relay unreachable (${err.message})`));
  }
}

function stream() {
  const es = new EventSource('/v1/events');
  es.addEventListener('open', () => { $('stream-state').textContent = 'live'; });
  es.addEventListener('error', () => { $('stream-state').textContent = 'reconnecting…'; });
  es.addEventListener('audit', (m) => onEvent(JSON.parse(m.data)));
}

$('token').value = token.get();
$('token').addEventListener('input', (e) => token.set(e.target.value));
$('verify').addEventListener('click', async () => {
  $('verify').disabled = true;
  replace($('verify-result'), 'verifying…');
  const res = await fetch('/v1/audit/verify', { method: 'POST' });
  const body = await res.json().catch(() => ({}));
  replace($('verify-result'), res.ok ? h('span', { class: body.ok ? 'ok' : 'error' }, `${body.ok ? 'OK' : 'FAILED'}: ${body.message}`) : h('span', { class: 'error' }, body.error ?? String(res.status)));
  $('verify').disabled = false;
  refresh();
});
$('explain').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams(new FormData(ev.target));
  const res = await fetch(`/v1/explain?${q}`);
  const body = await res.json().catch(() => ({}));
  $('explanation').textContent = res.ok
    ? [`${body.decision.allow ? 'ALLOW' : 'DENY'}: ${body.decision.reason}${body.decision.ruleId ? ` (rule ${body.decision.ruleId})` : ''}`, ...body.lines.map((l) => `  ${l}`)].join('\n')
    : body.error ?? String(res.status);
});

refresh();
stream();
setInterval(refresh, 5000);
