// The mevents console: a few pages over the admin API, refreshed every
// few seconds. Everything it shows is set as text, never as HTML.
'use strict';

const refreshEvery = 3000;
const $ = (sel) => document.querySelector(sel);

// api calls the admin API and returns its JSON; a problem answer throws
// its detail.
async function api(method, path, body) {
  const opt = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) throw new Error((data && (data.detail || data.title)) || ('HTTP ' + r.status));
  return data;
}

function cell(v, cls) {
  const td = document.createElement('td');
  if (v instanceof Node) td.appendChild(v); else td.textContent = v === undefined || v === null ? '' : String(v);
  if (cls) td.className = cls;
  return td;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    for (const c of cells) tr.appendChild(c instanceof HTMLTableCellElement ? c : cell(c));
    return tr;
  }));
}

function button(label, fn) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', fn);
  return b;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function status(text, bad) {
  const s = $('#status');
  s.textContent = text;
  s.className = bad ? 'bad' : 'muted';
}

// Pages: each loads its data; the current one is refreshed.
const pages = {
  async cluster() {
    const c = await api('GET', '/v1/admin/cluster');
    const ready = c.ready ? 'ready' : 'not ready: ' + (c.notReady || 'unknown');
    $('#cluster-summary').textContent = `Answered by ${c.node}` + (c.cluster ? ` · cluster ${c.cluster}` : ' · single node') +
      ` · meta leader ${c.metaLeader || 'none'} · ${ready} · nats-server ${c.version}, up ${c.uptime}`;
    $('#cluster-summary').className = c.ready ? 'ok' : 'bad';
    fill($('#cluster-nodes tbody'), c.nodes.map((p) => [p.name,
      cell(p.offline ? 'offline' : p.current ? 'current' : 'lagging', p.offline ? 'bad' : p.current ? 'ok' : 'bad'),
      p.leader ? 'yes' : '', cell(p.lag, 'num'), p.lastSeen]));
    const j = c.jetstream;
    fill($('#cluster-store tbody'), [[cell(j.streams, 'num'), cell(j.consumers, 'num'), cell(j.messages, 'num'),
      cell(bytes(j.store), 'num'), cell(bytes(j.maxStore), 'num'), cell(bytes(j.memory), 'num'), cell(j.apiErrors, 'num')]]);
  },

  prevStreams: null,
  async types() {
    const r = await api('GET', '/v1/admin/streams');
    const now = Date.now();
    const prev = pages.prevStreams;
    pages.prevStreams = { t: now, counts: Object.fromEntries(r.items.map((s) => [s.type, s.messages])) };
    fill($('#types tbody'), r.items.map((s) => {
      let rate = '…';
      if (prev && prev.counts[s.type] !== undefined && now > prev.t) {
        rate = (Math.max(0, s.messages - prev.counts[s.type]) * 1000 / (now - prev.t)).toFixed(1) + ' /s';
      }
      return [s.type, s.stream, cell(s.messages, 'num count'), cell(bytes(s.bytes), 'num'), cell(rate, 'num'),
        s.leader || (s.error ? cell(s.error, 'bad') : ''), cell(s.replicas, 'num')];
    }));
  },

  async groups() {
    const [lag, cursors] = await Promise.all([api('GET', '/v1/admin/lag'), api('GET', '/v1/admin/groups')]);
    const owners = {};
    for (const c of cursors.items) {
      if (!c.owner) continue;
      const k = [c.client, c.group, c.type].join('\u0000');
      const inst = (c.node || '?') + '/' + c.owner.slice(0, 8);
      ((owners[k] ||= {})[inst] ||= []).push(c.partition);
    }
    clientsSeen(lag.items.map((l) => l.client));
    fill($('#groups tbody'), lag.items.map((l) => {
      const o = owners[[l.client, l.group, l.type].join('\u0000')] || {};
      const inst = Object.entries(o).map(([i, ps]) => i + ': ' + ps.sort((a, b) => a - b).join(',')).join('; ');
      return [l.client, l.group, l.type, cell(l.pending, 'num'), cell(l.ackPending, 'num'),
        cell(l.oldestUnacked === '0s' ? '' : l.oldestUnacked, 'num'), inst || cell('none', 'muted')];
    }));
  },

  async dead() {
    if (!$('#dead-client').value) {
      const lag = await api('GET', '/v1/admin/lag');
      clientsSeen(lag.items.map((l) => l.client));
    }
  },

  async maintenance() {
    const m = await api('GET', '/v1/admin/maintenance');
    const p = $('#maintenance-state');
    p.textContent = m.enabled
      ? `ON since ${m.since} by ${m.by || '?'}: ${m.message}`
      : 'Off' + (m.by ? ` (last changed ${m.since} by ${m.by})` : '');
    p.className = m.enabled ? 'bad' : 'ok';
  },

  async audit() {
    if (auditPaged) return;
    const r = await api('GET', '/v1/admin/audit?limit=50');
    auditRows = r.items;
    showAudit(r.next);
  },
};

function clientsSeen(ids) {
  const list = $('#clients');
  const have = new Set([...list.options].map((o) => o.value));
  for (const id of new Set(ids)) {
    if (have.has(id)) continue;
    const o = document.createElement('option');
    o.value = id;
    list.appendChild(o);
  }
}

// Dead events of one client.
let deadCursor = null;
async function loadDead(more) {
  const client = $('#dead-client').value.trim();
  if (!client) return;
  const q = new URLSearchParams({ limit: '50' });
  if (more && deadCursor) q.set('cursor', deadCursor);
  const r = await api('GET', `/v1/admin/clients/${encodeURIComponent(client)}/dead-events?${q}`);
  deadCursor = r.next;
  $('#dead-more').hidden = !r.next;
  const base = `/v1/admin/clients/${encodeURIComponent(client)}/dead-events/`;
  const tbody = $('#dead tbody');
  if (!more) tbody.replaceChildren();
  for (const d of r.items) {
    const actions = document.createElement('span');
    actions.append(
      button('View', () => {
        const pre = $('#dead-event');
        pre.hidden = false;
        pre.textContent = `dead event ${d.id} of ${client}, group ${d.group}\nreason: ${d.reason} (${d.origin}, ${d.deliveryCount} deliveries)\n\n` +
          JSON.stringify(d.event, null, 2);
      }),
      button('Redeliver', () => act(`Redeliver dead event ${d.id} to ${client}, group ${d.group}?`,
        () => api('POST', base + encodeURIComponent(d.id) + '/redeliver'))),
      button('Delete', () => act(`Delete dead event ${d.id} of ${client} for good?`,
        () => api('DELETE', base + encodeURIComponent(d.id)))));
    const tr = document.createElement('tr');
    tr.dataset.id = d.id;
    for (const c of [d.id, d.group, d.origin, d.reason, cell(d.deliveryCount, 'num'), d.deadAt, cell(actions)]) {
      tr.appendChild(c instanceof HTMLTableCellElement ? c : cell(c));
    }
    tbody.appendChild(tr);
  }
  if (!tbody.children.length) fill(tbody, [[cell('no dead events', 'muted'), '', '', '', '', '', '']]);
}

// act asks, then does, then shows the result and reloads the dead events.
async function act(question, fn) {
  if (!window.confirm(question)) return;
  try {
    await fn();
    status('done: ' + question.replace(/\?$/, ''));
  } catch (e) {
    status(e.message, true);
  }
  $('#dead-event').hidden = true;
  await loadDead(false).catch((e) => status(e.message, true));
}

// The audit trail, newest first; once the reader pages back, refreshes
// stop moving it.
let auditPaged = false;
let auditRows = [];
function showAudit(next) {
  $('#audit-more').hidden = !next;
  $('#audit-more').dataset.next = next || '';
  fill($('#audit tbody'), auditRows.map((e) => [e.time, e.actor, e.action, e.target, e.detail || '', e.node]));
}

let current = 'cluster';
async function refresh() {
  try {
    await pages[current]();
    status('updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    status(e.message, true);
  }
}

function route() {
  const name = location.hash.slice(1);
  current = pages[name] && name !== 'prevStreams' ? name : 'cluster';
  for (const s of document.querySelectorAll('.page')) s.classList.toggle('active', s.id === 'page-' + current);
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === '#' + current);
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  window.addEventListener('hashchange', route);
  $('#dead-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    $('#dead-event').hidden = true;
    loadDead(false).catch((e) => status(e.message, true));
  });
  $('#dead-more').addEventListener('click', () => loadDead(true).catch((e) => status(e.message, true)));
  const setMaintenance = async (enabled) => {
    const message = $('#maintenance-message').value;
    if (!window.confirm(enabled ? `Turn maintenance mode ON for the whole cluster? Producers and consumers get 503.` : 'Turn maintenance mode off?')) return;
    try {
      await api('PUT', '/v1/admin/maintenance', { enabled, message: enabled ? message : '' });
      await pages.maintenance();
      status('maintenance ' + (enabled ? 'on' : 'off'));
    } catch (e) {
      status(e.message, true);
    }
  };
  $('#maintenance-form').addEventListener('submit', (ev) => { ev.preventDefault(); setMaintenance(true); });
  $('#maintenance-off').addEventListener('click', () => setMaintenance(false));
  $('#reload').addEventListener('click', async () => {
    if (!window.confirm('Reload the registry on this node?')) return;
    const out = $('#reload-result');
    try {
      const r = await api('POST', '/v1/admin/reload');
      out.textContent = `Reloaded: ${r.eventTypes} event types, ${r.clients} clients.`;
      out.className = 'ok';
    } catch (e) {
      out.textContent = e.message;
      out.className = 'bad';
    }
  });
  $('#audit-more').addEventListener('click', async () => {
    try {
      const r = await api('GET', '/v1/admin/audit?limit=50&cursor=' + encodeURIComponent($('#audit-more').dataset.next));
      auditPaged = true;
      auditRows = auditRows.concat(r.items);
      showAudit(r.next);
    } catch (e) {
      status(e.message, true);
    }
  });
  route();
  setInterval(() => { if (current !== 'dead') refresh(); }, refreshEvery);
});
