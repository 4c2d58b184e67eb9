/*
 * data — the data browser: read, write and delete a key (/v1/kv/{key}),
 * browse keys by prefix page by page (GET /v1/kv?prefix=&limit=&cursor=),
 * sharded counters (/v1/counters/{name}), and the users collection
 * (GET /users/{id}, GET /users?region=&limit=&cursor=, POST /users/).
 *
 * Each panel has one polite live region (p.result) holding a one-line
 * summary of the last action, and a plain area beside it for the details
 * (values, tables), so a screen reader hears the outcome, not the data.
 * Keys and names go into URLs percent-encoded; values are sent as raw
 * bytes (UTF-8 of the text).  Everything the node returns is shown with
 * textContent, never parsed as HTML.
 */
import { request, describeError, kvPath, query, jsonString } from './api.js';

const SHOW_CHARS = 20000; /* longest value shown in full */
const CELL_CHARS = 120; /* longest value shown in a table cell */

function $(id) {
  return document.getElementById(id);
}

function say(el, text, kind) {
  el.className = `result${kind ? ` ${kind}` : ''}`;
  el.textContent = kind === 'err' ? `Error: ${text}` : text;
}

function clip(s, n) {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function valueText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/* A <dl> of [term, value] pairs. */
function facts(pairs) {
  const dl = document.createElement('dl');
  dl.className = 'facts';
  for (const [k, v] of pairs) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
  return dl;
}

function pre(text) {
  const p = document.createElement('pre');
  p.className = 'value';
  p.tabIndex = 0; /* it may scroll: reachable by keyboard */
  p.setAttribute('aria-label', 'Value');
  p.textContent = text.length > SHOW_CHARS ? `${text.slice(0, SHOW_CHARS)}\n… (${text.length - SHOW_CHARS} more characters)` : text;
  return p;
}

function cell(text, cls) {
  const c = document.createElement('td');
  if (cls) c.className = cls;
  c.textContent = text;
  return c;
}

/* The submit button that sent a form (Enter in a field: the form's first button). */
function action(ev, form) {
  const b = ev.submitter || form.querySelector('button[type=submit]');
  return b ? b.value || b.id : '';
}

/* Field check before a request: the message, focus on the field, false. */
function need(ok, field, resultEl, message) {
  if (ok) {
    field.removeAttribute('aria-invalid');
    return true;
  }
  field.setAttribute('aria-invalid', 'true');
  say(resultEl, message, 'err');
  field.focus();
  return false;
}

const INT = /^-?(0|[1-9][0-9]*)$/;
const UINT = /^[1-9][0-9]*$/;

/* ---- key and value ------------------------------------------------------------------------ */

export class KvPanel {
  constructor() {
    this.form = $('kv-form');
    this.key = $('kv-key');
    this.value = $('kv-value');
    this.ttl = $('kv-ttl');
    this.ifMatch = $('kv-ifmatch');
    this.result = $('kv-result');
    this.detail = $('kv-detail');
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run(action(ev, this.form));
    });
  }

  /* Opens a key from elsewhere (the scan list): fills the form and reads it. */
  open(key) {
    this.key.value = key;
    this.key.focus();
    return this.run('get');
  }

  async run(op) {
    const key = this.key.value;
    if (!need(key !== '', this.key, this.result, 'a key is needed')) return;
    if (op === 'get') await this.get(key);
    else if (op === 'put') await this.put(key);
    else if (op === 'delete') await this.del(key);
  }

  async get(key) {
    const r = await request('GET', kvPath(key));
    this.detail.replaceChildren();
    if (!r.ok) {
      say(this.result, r.status === 404 ? `no key “${key}” (404)` : describeError(r), 'err');
      return;
    }
    const version = (r.headers.get('ETag') || '').replace(/"/g, '');
    const shard = r.headers.get('X-Shard');
    const expires = r.headers.get('X-Expires-At-Ms');
    const bytes = new TextEncoder().encode(r.text).length;
    say(this.result, `Found “${key}” on shard ${shard}, version ${version}.`, 'ok');
    const pairs = [['shard', shard], ['version', version], ['type', r.headers.get('Content-Type') || '—'], ['size', `${bytes} bytes (as text)`]];
    if (expires) pairs.push(['expires', new Date(Number(expires)).toLocaleString()]);
    this.detail.append(facts(pairs), pre(r.text));
    this.value.value = r.text;
  }

  async put(key) {
    const ttl = this.ttl.value.trim();
    const ifm = this.ifMatch.value.trim();
    if (!need(ttl === '' || UINT.test(ttl), this.ttl, this.result, 'the expiry must be a whole number of seconds')) return;
    if (!need(ifm === '' || UINT.test(ifm), this.ifMatch, this.result, 'the version must be a whole number')) return;
    const headers = { 'Content-Type': 'application/octet-stream' };
    if (ifm) headers['If-Match'] = `"${ifm}"`;
    const r = await request('PUT', kvPath(key) + query({ ttl }), { body: this.value.value, headers });
    this.detail.replaceChildren();
    if (!r.ok || !r.json) {
      say(this.result, r.status === 412 ? `not stored: the key's version is not ${ifm} (412)` : describeError(r), 'err');
      return;
    }
    const a = r.json;
    say(this.result, `${a.created ? 'Created' : 'Replaced'} “${key}” on shard ${a.shard}, version ${a.version}.`, 'ok');
    const pairs = [['shard', String(a.shard)], ['version', String(a.version)]];
    if (a.expires_at_ms) pairs.push(['expires', new Date(Number(a.expires_at_ms)).toLocaleString()]);
    this.detail.append(facts(pairs));
  }

  async del(key) {
    const ifm = this.ifMatch.value.trim();
    if (!need(ifm === '' || UINT.test(ifm), this.ifMatch, this.result, 'the version must be a whole number')) return;
    const headers = ifm ? { 'If-Match': `"${ifm}"` } : undefined;
    const r = await request('DELETE', kvPath(key), { headers });
    this.detail.replaceChildren();
    if (!r.ok || !r.json) {
      say(this.result, r.status === 404 ? `no key “${key}” (404)` : describeError(r), 'err');
      return;
    }
    say(this.result, `Deleted “${key}” from shard ${r.json.shard} (version ${r.json.version}).`, 'ok');
  }
}

/* ---- prefix scan -------------------------------------------------------------------------- */

export class ScanPanel {
  constructor(kv) {
    this.kv = kv;
    this.form = $('scan-form');
    this.prefix = $('scan-prefix');
    this.limit = $('scan-limit');
    this.result = $('scan-result');
    this.table = $('scan-table');
    this.caption = $('scan-caption');
    this.rows = $('scan-rows');
    this.first = $('scan-first');
    this.next = $('scan-next');
    this.state = null; /* {prefix, limit, page, cursor} of the page shown */
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.start();
    });
    this.first.addEventListener('click', () => this.load(this.state.prefix, this.state.limit, '', 1));
    this.next.addEventListener('click', () => this.load(this.state.prefix, this.state.limit, this.state.cursor, this.state.page + 1));
  }

  start() {
    const limit = this.limit.value.trim() || '20';
    if (!need(UINT.test(limit) && Number(limit) <= 1000, this.limit, this.result, 'per page must be 1 to 1000')) return;
    this.load(this.prefix.value, limit, '', 1);
  }

  async load(prefix, limit, cursor, page) {
    const r = await request('GET', `/v1/kv${query({ prefix, limit, cursor })}`);
    if (!r.ok || !r.json) {
      say(this.result, describeError(r), 'err');
      return;
    }
    const items = r.json.items || [];
    this.state = { prefix, limit, page, cursor: r.json.next_cursor };
    const what = prefix ? `keys starting with “${prefix}”` : 'all keys';
    this.caption.textContent = `Page ${page} of ${what}`;
    this.rows.replaceChildren(...items.map((it) => {
      const tr = document.createElement('tr');
      const keyCell = document.createElement('td');
      keyCell.className = 'key';
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'link';
      open.textContent = it.key;
      open.setAttribute('aria-label', `Open key ${it.key}`);
      open.addEventListener('click', () => this.kv.open(it.key));
      keyCell.appendChild(open);
      tr.append(keyCell, cell(clip(valueText(it.value), CELL_CHARS), 'val'), cell(String(it.version), 'num'), cell(String(it.shard), 'num'));
      return tr;
    }));
    this.table.hidden = false;
    $('scan-pager').hidden = false;
    this.first.disabled = page === 1;
    this.next.disabled = !r.json.next_cursor;
    const more = r.json.next_cursor ? '; more on the next page' : '; last page';
    say(this.result, `Page ${page}: ${items.length} ${items.length === 1 ? 'key' : 'keys'} (${what})${more}.`, 'ok');
  }
}

/* ---- counters ----------------------------------------------------------------------------- */

export class CounterPanel {
  constructor() {
    this.form = $('counter-form');
    this.name = $('counter-name');
    this.by = $('counter-by');
    this.result = $('counter-result');
    this.detail = $('counter-detail');
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run(action(ev, this.form));
    });
  }

  async run(op) {
    const name = this.name.value;
    if (!need(name !== '', this.name, this.result, 'a counter name is needed')) return;
    const path = `/v1/counters/${encodeURIComponent(name)}`;
    if (op === 'get') {
      await this.show(name, path);
      return;
    }
    const by = this.by.value.trim() || '1';
    if (!need(INT.test(by) && by !== '0', this.by, this.result, '“by” must be a non-zero whole number')) return;
    const r = await request('POST', `${path}/${op === 'decr' ? 'decr' : 'incr'}${query({ by })}`);
    if (!r.ok || !r.json) {
      say(this.result, describeError(r), 'err');
      return;
    }
    const a = r.json;
    const delta = String(a.delta);
    const sign = delta.startsWith('-') ? '' : '+';
    say(this.result, `Counter “${name}” is now ${a.value} (${sign}${delta} on shard ${a.shard}${a.created ? ', created' : ''}).`, 'ok');
    this.detail.replaceChildren(facts([['value', String(a.value)], ['sub-counters (k)', String(a.k)], ['written on shard', String(a.shard)]]));
  }

  async show(name, path) {
    const r = await request('GET', path);
    this.detail.replaceChildren();
    if (!r.ok || !r.json) {
      say(this.result, r.status === 404 ? `no counter “${name}” (404)` : describeError(r), 'err');
      return;
    }
    const a = r.json;
    say(this.result, `Counter “${name}” = ${a.value}, over ${a.k} sub-counters.`, 'ok');
    const table = document.createElement('table');
    table.className = 'items compact';
    const cap = document.createElement('caption');
    cap.textContent = 'Sub-counters';
    const head = document.createElement('thead');
    const hr = document.createElement('tr');
    for (const label of ['Shard', 'Value']) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.className = 'num';
      th.textContent = label;
      hr.appendChild(th);
    }
    head.appendChild(hr);
    const body = document.createElement('tbody');
    for (const s of a.sub_counters || []) {
      const tr = document.createElement('tr');
      tr.append(cell(String(s.shard), 'num'), cell(String(s.value), 'num'));
      body.appendChild(tr);
    }
    table.append(cap, head, body);
    this.detail.append(facts([['value', String(a.value)], ['id', String(a.id)], ['k', String(a.k)]]), table);
  }
}

/* ---- users -------------------------------------------------------------------------------- */

export class UsersPanel {
  constructor() {
    this.result = $('user-result');
    this.detail = $('user-detail');
    this.table = $('user-table');
    this.caption = $('user-caption');
    this.rows = $('user-rows');
    this.next = $('user-next');
    this.state = null;
    this.id = $('user-id');
    this.region = $('user-region');
    this.limit = $('user-limit');
    this.newId = $('new-user-id');
    $('user-get-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.get();
    });
    $('user-list-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const limit = this.limit.value.trim() || '20';
      if (!need(UINT.test(limit) && Number(limit) <= 1000, this.limit, this.result, 'per page must be 1 to 1000')) return;
      this.list(this.region.value, limit, '', 1);
    });
    this.next.addEventListener('click', () => this.list(this.state.region, this.state.limit, this.state.cursor, this.state.page + 1));
    $('user-create-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.create();
    });
  }

  userFacts(u, shard) {
    const pairs = Object.entries(u).map(([k, v]) => [k, valueText(v)]);
    if (shard !== null && shard !== undefined) pairs.push(['shard', String(shard)]);
    return facts(pairs);
  }

  async get() {
    const id = this.id.value.trim();
    if (!need(INT.test(id), this.id, this.result, 'the user id must be a whole number')) return;
    const r = await request('GET', `/users/${encodeURIComponent(id)}`);
    this.detail.replaceChildren();
    if (!r.ok || !r.json) {
      say(this.result, r.status === 404 ? `no user ${id} (404)` : describeError(r), 'err');
      return;
    }
    const shard = r.headers.get('X-Shard');
    say(this.result, `User ${id}: ${r.json.name ?? '(no name)'}${shard !== null ? `, on shard ${shard}` : ''}.`, 'ok');
    this.detail.append(this.userFacts(r.json, shard));
  }

  async list(region, limit, cursor, page) {
    const r = await request('GET', `/users${query({ region, limit, cursor })}`);
    if (!r.ok || !r.json) {
      say(this.result, describeError(r), 'err');
      return;
    }
    const items = r.json.items || [];
    this.state = { region, limit, page, cursor: r.json.next_cursor };
    const what = region ? `users in region “${region}”` : 'all users';
    this.caption.textContent = `Page ${page} of ${what}`;
    this.rows.replaceChildren(...items.map((u) => {
      const tr = document.createElement('tr');
      tr.append(cell(valueText(u.user_id ?? ''), 'num'), cell(valueText(u.name ?? '')), cell(valueText(u.region ?? '')), cell(valueText(u.email ?? ''), 'val'));
      return tr;
    }));
    this.table.hidden = false;
    $('user-pager').hidden = false;
    this.detail.replaceChildren();
    this.next.disabled = !r.json.next_cursor;
    say(this.result, `Page ${page}: ${items.length} ${items.length === 1 ? 'user' : 'users'} (${what})${r.json.next_cursor ? '; more on the next page' : '; last page'}.`, 'ok');
  }

  async create() {
    const id = this.newId.value.trim();
    if (!need(INT.test(id), this.newId, this.result, 'the new user id must be a whole number')) return;
    /* Built by hand so a 64-bit id is sent exactly. */
    let body = `{"user_id":${id}`;
    for (const f of ['name', 'region', 'email']) {
      const v = $(`new-user-${f}`).value;
      if (v !== '') body += `,${jsonString(f)}:${jsonString(v)}`;
    }
    body += '}';
    const r = await request('POST', '/users/', { body, headers: { 'Content-Type': 'application/json' } });
    this.detail.replaceChildren();
    if (!r.ok || !r.json) {
      say(this.result, describeError(r), 'err');
      return;
    }
    const shard = r.headers.get('X-Shard');
    say(this.result, `Created user ${id}${shard !== null ? ` on shard ${shard}` : ''}.`, 'ok');
    this.detail.append(this.userFacts(r.json, shard));
  }
}
