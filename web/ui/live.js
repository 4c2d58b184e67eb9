/*
 * live — the polling loop and the live overview: GET /shards and GET
 * /health every INTERVAL_MS (one request each, one after the other answered:
 * never two polls in flight), GET /v1/hotkeys every other round.
 *
 * Each /shards answer gives the totals, the balance figures, the shard
 * table and, against the previous answer, each shard's request rate; the
 * rates go into a 60-sample History drawn by the heatmap.  The ring view is
 * handed every answer and redraws only when the shard map changes.
 *
 * A node without /v1/hotkeys (404) is asked again only every 30 s.  When
 * the node does not answer, the header says so and polling goes on.
 * Nothing here is an ARIA live region: numbers that change every 1.5 s
 * would drown a screen reader; the pause button stops the updates.
 */
import { getJson, describeError, query } from './api.js';
import {
  balance, rates, History, shardColor,
  formatCount, formatBytes, formatRate, formatRatio, formatPercent, formatDuration,
} from './stats.js';

export const INTERVAL_MS = 1500;
export const SAMPLES = 60;
const HOT_RETRY_MS = 30000;

function $(id) {
  return document.getElementById(id);
}

function td(cls) {
  const cell = document.createElement('td');
  if (cls) cell.className = cls;
  return cell;
}

export class LiveView {
  constructor({ ring, heatmap }) {
    this.ring = ring;
    this.heatmap = heatmap;
    this.history = new History(SAMPLES);
    this.prev = null; /* {at, requests: Map} of the previous /shards answer */
    this.rows = new Map(); /* shard id -> {tr, cells} */
    this.health = null;
    this.hot = null;
    this.hotRetryAt = 0;
    this.round = 0;
    this.timer = null;
    this.paused = false;
    this.dark = false;
    this.running = false;
    $('hot-shard').addEventListener('change', () => this.renderHot());
  }

  start() {
    this.paused = false;
    if (!this.running) this.tick();
  }

  /* Stops after the round in flight; the next start() measures rates from a fresh sample. */
  pause() {
    this.paused = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.prev = null;
  }

  setDark(dark) {
    this.dark = dark;
    for (const [id, row] of this.rows) row.swatch.style.backgroundColor = shardColor(id, dark);
  }

  async tick() {
    this.running = true;
    const began = performance.now();
    const [shards, health] = await Promise.all([
      getJson('/shards', { timeoutMs: 5000 }),
      getJson('/health', { timeoutMs: 5000 }),
    ]);
    const at = performance.now();
    if (health.json && !health.json.error) this.health = health.json;
    if (shards.ok && shards.json) this.onShards(shards.json, at);
    this.renderHealth(shards.ok ? null : shards);
    if (this.round % 2 === 0 && Date.now() >= this.hotRetryAt) await this.pollHot();
    this.round++;
    this.running = false;
    if (!this.paused) this.timer = setTimeout(() => this.tick(), Math.max(200, INTERVAL_MS - (performance.now() - began)));
  }

  onShards(answer, at) {
    const list = answer.shards || [];
    const requests = new Map(list.map((s) => [s.id, Number(s.requests)]));
    const r = rates(this.prev && this.prev.requests, requests, this.prev ? (at - this.prev.at) / 1000 : 0);
    this.prev = { at, requests };
    this.history.push(r);
    this.answer = answer;

    let total = null;
    for (const v of r.values()) if (v !== null) total = (total || 0) + v;
    $('t-keys').textContent = formatCount(answer.total_keys);
    $('t-bytes').textContent = formatBytes(answer.total_bytes);
    $('t-rate').textContent = formatRate(total);
    $('t-shards').textContent = String(list.length);
    $('node-desc').textContent = `placement ${answer.placement} · hash ${answer.hash} · ${answer.vnodes} vnodes · shard map v${answer.shard_map_version}`;

    const kb = balance(list.map((s) => Number(s.keys)));
    const sb = balance(list.map((s) => Number(s.share)));
    $('b-keys-max').textContent = formatRatio(kb && kb.maxOverMean);
    $('b-keys-min').textContent = formatRatio(kb && kb.minOverMean);
    $('b-keys-sd').textContent = formatRatio(kb && kb.stddevOverMean);
    $('b-share-max').textContent = formatRatio(sb && sb.maxOverMean);
    $('b-share-min').textContent = formatRatio(sb && sb.minOverMean);
    $('b-share-sd').textContent = formatRatio(sb && sb.stddevOverMean);

    this.renderShards(list, r);
    this.ring.update(answer);
    this.heatmap.update(this.history, list.map((s) => s.id));
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  row(id) {
    let row = this.rows.get(id);
    if (row) return row;
    const tr = document.createElement('tr');
    tr.dataset.shard = String(id);
    const th = document.createElement('th');
    th.scope = 'row';
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.setAttribute('aria-hidden', 'true');
    swatch.style.backgroundColor = shardColor(id, this.dark);
    th.append(swatch, document.createTextNode(String(id)));
    const status = td('status');
    const keys = td('num keys');
    const keyText = document.createElement('span');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    bar.appendChild(fill);
    keys.append(keyText, bar);
    const bytes = td('num');
    const share = td('num');
    const rate = td('num');
    tr.append(th, status, keys, bytes, share, rate);
    row = { tr, swatch, status, keyText, fill, bytes, share, rate };
    this.rows.set(id, row);
    return row;
  }

  renderShards(list, r) {
    const body = $('shard-rows');
    const maxKeys = Math.max(1, ...list.map((s) => Number(s.keys)));
    const healthById = new Map(((this.health && this.health.shards) || []).map((s) => [s.id, s]));
    const wanted = list.map((s) => this.row(s.id).tr);
    if (wanted.length !== body.children.length || wanted.some((tr, i) => body.children[i] !== tr)) {
      body.replaceChildren(...wanted);
    }
    for (const s of list) {
      const row = this.row(s.id);
      const h = healthById.get(s.id);
      const status = h ? h.status : '—';
      row.status.textContent = status;
      row.status.className = `status st-${h ? h.status : 'unknown'}`;
      row.keyText.textContent = formatCount(s.keys);
      row.fill.style.width = `${((Number(s.keys) / maxKeys) * 100).toFixed(1)}%`;
      row.fill.style.backgroundColor = shardColor(s.id, this.dark);
      row.bytes.textContent = formatBytes(s.bytes);
      row.share.textContent = formatPercent(Number(s.share));
      row.rate.textContent = formatRate(r.get(s.id));
    }
  }

  /* The header badge: the node's health, or why it cannot be had. */
  renderHealth(failed) {
    const dot = $('health-dot');
    const text = $('health-text');
    const box = $('health');
    if (failed) {
      box.className = 'health bad';
      text.textContent = `unreachable — ${describeError(failed)}`;
      return;
    }
    const h = this.health;
    if (!h) return;
    const good = h.status === 'healthy' && h.state === 'ready';
    box.className = `health ${good ? 'good' : 'warn'}`;
    dot.title = h.status;
    text.textContent = `${h.status} · ${h.state} · v${h.version} · fsync ${h.fsync} · ${h.threads} threads`;
    $('t-uptime').textContent = formatDuration(h.uptime_seconds);
  }

  async pollHot() {
    const r = await getJson(`/v1/hotkeys${query({ limit: 10 })}`, { timeoutMs: 5000 });
    if (r.ok && r.json) {
      this.hot = r.json;
      this.hotError = null;
    } else {
      this.hot = null;
      this.hotError = r.status === 404
        ? 'This node does not track hot keys (no /v1/hotkeys); asking again every 30 s.'
        : `Hot keys unavailable: ${describeError(r)}`;
      this.hotRetryAt = Date.now() + HOT_RETRY_MS;
    }
    this.renderHot();
  }

  renderHot() {
    const note = $('hot-note');
    const body = $('hot-rows');
    const select = $('hot-shard');
    if (!this.hot) {
      note.textContent = this.hotError || 'Loading…';
      body.replaceChildren();
      return;
    }
    const perShard = this.hot.shards || [];
    const options = [''].concat(perShard.map((s) => String(s.shard)));
    if (select.options.length !== options.length) {
      const keep = select.value;
      select.replaceChildren(...options.map((v) => {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = v === '' ? 'All shards (top 10)' : `Shard ${v}`;
        return o;
      }));
      select.value = options.includes(keep) ? keep : '';
    }
    let items;
    let scope;
    if (select.value === '') {
      items = this.hot.top || [];
      scope = 'all shards';
    } else {
      const s = perShard.find((x) => String(x.shard) === select.value);
      items = s ? (s.keys || []).map((k) => ({ ...k, shard: s.shard })) : [];
      scope = s ? `shard ${s.shard} (${formatCount(s.requests)} requests tracked)` : `shard ${select.value}`;
    }
    note.textContent = `${items.length ? '' : 'No key has been requested yet. '}Approximate request counts over ${scope}, ` +
      `decaying over ${this.hot.decay_seconds} s; up to ${this.hot.capacity} keys tracked per shard; ± is the count's error bound.`;
    body.replaceChildren(...items.map((k, i) => {
      const tr = document.createElement('tr');
      const rank = td('num');
      rank.textContent = String(i + 1);
      const key = td('key');
      key.textContent = k.key;
      if (k.truncated) {
        const more = document.createElement('span');
        more.className = 'muted';
        more.textContent = '… (key truncated)';
        key.appendChild(more);
      }
      const shard = td('num');
      shard.textContent = String(k.shard);
      const count = td('num');
      const c = Number(k.count);
      count.textContent = Number.isInteger(c) ? formatCount(c) : c.toFixed(1);
      if (Number(k.error) > 0) count.textContent += ` ±${Number.isInteger(Number(k.error)) ? k.error : Number(k.error).toFixed(1)}`;
      tr.append(rank, key, shard, count);
      return tr;
    }));
  }
}
