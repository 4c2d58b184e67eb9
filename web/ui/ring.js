/*
 * ring — the picture of the hash ring (an SVG donut, drawn here without a
 * library) and the "where does a key land?" lookup.
 *
 * The node does not publish its virtual-node positions, only each shard's
 * share of the hash space (GET /shards "share"), so each shard is one arc
 * whose length is its share, in shard order from 12 o'clock clockwise.
 *
 * Lookup: GET /v1/placement?key=K -> {"key","shard","hash"} tells where any
 * key lands, stored or not.  A node without that route answers 404; the
 * lookup then falls back to HEAD /v1/kv/K, whose X-Shard header answers for
 * a stored key only.
 */
import { request, describeError, kvPath, query } from './api.js';
import { arcs, shardColor, formatPercent } from './stats.js';

const SVG = 'http://www.w3.org/2000/svg';
const C = 120; /* centre of the 240 x 240 view box */
const R_OUT = 104;
const R_IN = 70;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/* Point at fraction t of a turn (0 = 12 o'clock, clockwise) and radius r. */
function point(t, r) {
  const a = t * 2 * Math.PI - Math.PI / 2;
  return [C + r * Math.cos(a), C + r * Math.sin(a)];
}

/* The path of a donut slice from start to end (fractions of a turn). */
function slicePath(start, end) {
  if (end - start >= 0.9999) {
    /* A full turn cannot be one arc: two halves. */
    return `${slicePath(start, start + 0.5)} ${slicePath(start + 0.5, end)}`;
  }
  const large = end - start > 0.5 ? 1 : 0;
  const [x0, y0] = point(start, R_OUT);
  const [x1, y1] = point(end, R_OUT);
  const [x2, y2] = point(end, R_IN);
  const [x3, y3] = point(start, R_IN);
  const f = (n) => n.toFixed(3);
  return `M${f(x0)} ${f(y0)} A${R_OUT} ${R_OUT} 0 ${large} 1 ${f(x1)} ${f(y1)} ` +
    `L${f(x2)} ${f(y2)} A${R_IN} ${R_IN} 0 ${large} 0 ${f(x3)} ${f(y3)} Z`;
}

export class RingView {
  constructor({ svg, desc, legend, form, input, result }) {
    this.svg = svg;
    this.desc = desc;
    this.legend = legend;
    this.result = result;
    this.input = input;
    this.signature = '';
    this.shards = [];
    this.meta = null;
    this.hit = null; /* {shard, key} of the last lookup */
    this.dark = false;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.locate(input.value);
    });
  }

  /* New /shards answer: redraw only when the shard map changed. */
  update(answer) {
    const shards = answer.shards || [];
    const sig = `${this.dark}|${answer.placement}|${answer.hash}|${answer.vnodes}|` +
      shards.map((s) => `${s.id}:${s.share}`).join(',');
    this.meta = answer;
    this.shards = shards;
    if (sig === this.signature) return;
    this.signature = sig;
    this.draw();
  }

  setDark(dark) {
    this.dark = dark;
    this.signature = '';
    if (this.meta) this.update(this.meta);
  }

  draw() {
    const svg = this.svg;
    for (const node of [...svg.childNodes]) if (node.nodeName !== 'title' && node.nodeName !== 'desc') node.remove();
    const parts = arcs(this.shards);
    const g = el('g', { class: 'arcs' });
    parts.forEach((a, i) => {
      const sh = this.shards[i];
      const path = el('path', { d: slicePath(a.start, a.end), fill: shardColor(sh.id, this.dark), class: 'arc' });
      path.dataset.shard = String(sh.id);
      path.appendChild(el('title', {}, `shard ${sh.id}: ${formatPercent(a.end - a.start)} of the hash space`));
      if (this.hit && this.hit.shard !== sh.id) path.classList.add('dim');
      if (this.hit && this.hit.shard === sh.id) path.classList.add('hit');
      g.appendChild(path);
    });
    svg.appendChild(g);

    const hitArc = this.hit ? parts.find((a) => a.id === this.hit.shard) : null;
    if (hitArc) {
      const mid = (hitArc.start + hitArc.end) / 2;
      const [px, py] = point(mid, (R_IN + R_OUT) / 2);
      const [lx, ly] = point(mid, R_IN - 6);
      svg.appendChild(el('line', { x1: lx.toFixed(2), y1: ly.toFixed(2), x2: px.toFixed(2), y2: py.toFixed(2), class: 'pin-line' }));
      svg.appendChild(el('circle', { cx: px.toFixed(2), cy: py.toFixed(2), r: 7, class: 'pin' }));
      const label = this.hit.key.length > 16 ? `${this.hit.key.slice(0, 15)}…` : this.hit.key;
      svg.appendChild(el('text', { x: C, y: C - 6, class: 'ring-label strong' }, `shard ${this.hit.shard}`));
      svg.appendChild(el('text', { x: C, y: C + 14, class: 'ring-label' }, label));
    } else if (this.meta) {
      svg.appendChild(el('text', { x: C, y: C - 6, class: 'ring-label strong' }, `${this.shards.length} shards`));
      svg.appendChild(el('text', { x: C, y: C + 14, class: 'ring-label' }, `${this.meta.placement} · ${this.meta.hash}`));
    }

    this.desc.textContent = this.shards.length
      ? `${this.shards.length} shards, placement ${this.meta.placement}, hash ${this.meta.hash}, ` +
        `${this.meta.vnodes} virtual nodes per shard. ` +
        parts.map((a) => `Shard ${a.id}: ${formatPercent(a.end - a.start)}`).join('; ') + '.' +
        (this.hit ? ` The key ${this.hit.key} lands on shard ${this.hit.shard}.` : '')
      : 'No data yet.';

    this.legend.replaceChildren();
    parts.forEach((a) => {
      const li = document.createElement('li');
      if (this.hit && this.hit.shard === a.id) li.classList.add('hit');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.setAttribute('aria-hidden', 'true');
      sw.style.backgroundColor = shardColor(a.id, this.dark);
      const text = document.createElement('span');
      text.textContent = `shard ${a.id}`;
      const pct = document.createElement('span');
      pct.className = 'num';
      pct.textContent = formatPercent(a.end - a.start);
      li.append(sw, text, pct);
      this.legend.appendChild(li);
    });
  }

  setHit(hit) {
    this.hit = hit;
    this.signature = '';
    if (this.meta) this.update(this.meta);
  }

  async locate(key) {
    if (key === '') {
      this.result.className = 'result err';
      this.result.textContent = 'Type a key first.';
      this.input.focus();
      return;
    }
    this.result.className = 'result';
    this.result.textContent = 'Looking up…';
    const r = await request('GET', `/v1/placement${query({ key })}`);
    if (r.ok && r.json) {
      const hash = r.json.hash !== undefined ? `, hash ${r.json.hash}` : '';
      this.show(key, Number(r.json.shard), `The key “${key}” lands on shard ${r.json.shard}${hash}.`);
      return;
    }
    if (r.status !== 404) {
      this.fail(describeError(r));
      return;
    }
    /* No placement route on this node: a stored key still tells its shard. */
    const h = await request('HEAD', kvPath(key));
    const shard = h.headers.get('X-Shard');
    if (h.ok && shard !== null) {
      this.show(key, Number(shard), `The key “${key}” is stored on shard ${shard}.`);
    } else if (h.status === 404) {
      this.setHit(null);
      this.fail(`The key “${key}” is not stored, and this node cannot say where it would land (it has no /v1/placement).`);
    } else {
      this.fail(describeError(h));
    }
  }

  show(key, shard, text) {
    this.setHit({ key, shard });
    this.result.className = 'result ok';
    this.result.textContent = text;
  }

  fail(text) {
    this.result.className = 'result err';
    this.result.textContent = `Error: ${text}`;
  }
}
