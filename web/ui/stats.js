/*
 * stats — the dashboard's arithmetic, free of the DOM so it can be tested
 * on its own: balance figures, request rates, the rate history behind the
 * heatmap, the shard colours and number formatting.
 *
 * Balance is computed the way `shardkv ring` (src/ringstat.c) does:
 * mean = keys / N; max/mean and min/mean of the per-shard key counts;
 * stddev/mean is the population standard deviation over the mean.  With no
 * keys at all the figures are undefined and come back as null.
 *
 * Rates: rate = (requests now - requests before) / seconds between the two
 * answers.  A count that went down (the node restarted) gives no rate
 * (null) rather than a negative one.
 */

/* Balance of the per-shard counts: {mean, max, min, maxOverMean, minOverMean, stddevOverMean}. */
export function balance(counts) {
  const n = counts.length;
  if (n === 0) return null;
  let sum = 0;
  let max = -Infinity;
  let min = Infinity;
  for (const c of counts) {
    sum += c;
    if (c > max) max = c;
    if (c < min) min = c;
  }
  const mean = sum / n;
  if (mean === 0) return { mean: 0, max, min, maxOverMean: null, minOverMean: null, stddevOverMean: null };
  let sq = 0;
  for (const c of counts) sq += (c - mean) * (c - mean);
  return {
    mean,
    max,
    min,
    maxOverMean: max / mean,
    minOverMean: min / mean,
    stddevOverMean: Math.sqrt(sq / n) / mean,
  };
}

/*
 * Per-shard request rates between two /shards answers.  prev and cur map
 * shard id -> requests; seconds is the time between the answers.  Returns
 * a Map id -> requests per second, or null for a shard without a usable
 * previous count.
 */
export function rates(prev, cur, seconds) {
  const out = new Map();
  for (const [id, now] of cur) {
    const before = prev ? prev.get(id) : undefined;
    if (before === undefined || !(seconds > 0) || now < before) out.set(id, null);
    else out.set(id, (now - before) / seconds);
  }
  return out;
}

/* The last `capacity` samples, oldest first (the heatmap's columns). */
export class History {
  constructor(capacity) {
    this.capacity = capacity;
    this.samples = [];
  }

  push(sample) {
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
  }

  /* The largest value of any sample (0 when empty or all null). */
  max() {
    let m = 0;
    for (const s of this.samples) for (const v of s.values()) if (v !== null && v > m) m = v;
    return m;
  }
}

/*
 * Arcs of the ring: each shard's share of the hash space as [start, end)
 * fractions of a turn, in shard order.  Shares are normalised so that
 * rounding in the node's answer never leaves a gap or an overlap.
 */
export function arcs(shards) {
  const total = shards.reduce((s, sh) => s + Math.max(0, Number(sh.share) || 0), 0);
  let at = 0;
  return shards.map((sh) => {
    const frac = total > 0 ? Math.max(0, Number(sh.share) || 0) / total : 1 / shards.length;
    const arc = { id: sh.id, start: at, end: at + frac };
    at += frac;
    return arc;
  });
}

/* Well separated hues for the first shards, then the golden angle. */
const HUES = [212, 24, 140, 292, 48, 188, 348, 96, 262, 6, 160, 320];

/* The colour of shard i: dark enough on a light page, light enough on a dark one (3:1 at least). */
export function shardColor(i, dark) {
  const hue = i < HUES.length ? HUES[i] : (i * 137.508) % 360;
  const band = Math.floor(i / HUES.length) % 2; /* alternate lightness past the palette */
  const light = dark ? 66 + band * 10 : 34 + band * 6;
  return `hsl(${hue.toFixed(1)} 72% ${light}%)`;
}

const nf = new Intl.NumberFormat('en');

export function formatCount(n) {
  if (n === null || n === undefined) return '—';
  return typeof n === 'string' ? n : nf.format(n);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatRate(r) {
  if (r === null || r === undefined) return '—';
  if (r === 0) return '0';
  return r < 10 ? r.toFixed(1) : nf.format(Math.round(r));
}

export function formatRatio(x) {
  return x === null || x === undefined ? '—' : x.toFixed(3);
}

export function formatPercent(frac) {
  return frac === null || frac === undefined ? '—' : `${(frac * 100).toFixed(1)}%`;
}

export function formatDuration(seconds) {
  const s = Math.floor(Number(seconds) || 0);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}
