/*
 * heatmap — request rate per shard over time, drawn on a canvas: one row
 * per shard, one column per sample (the History of stats.js, newest on the
 * right), darker = busier.  The colour scale is the square root of
 * rate / the window's largest rate, so a quiet shard next to a hot one is
 * still visible.  A sample without a rate (the first one, or after the
 * node restarted) is left blank.
 *
 * The canvas is sized in CSS pixels by its box and drawn at the device
 * pixel ratio; its aria-label carries a text summary for screen readers.
 */
import { formatRate } from './stats.js';

const LABEL_W = 58;
const AXIS_H = 18;

/* Colour for t in [0, 1]: one hue, from the page background to strong. */
export function heatColor(t, dark) {
  const light = dark ? 16 + t * 56 : 96 - t * 66;
  const sat = 25 + t * 55;
  return `hsl(212 ${sat.toFixed(0)}% ${light.toFixed(1)}%)`;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class Heatmap {
  constructor({ canvas, scale, maxLabel, summary, capacity, intervalSeconds }) {
    this.canvas = canvas;
    this.scale = scale;
    this.maxLabel = maxLabel;
    this.summary = summary;
    this.capacity = capacity;
    this.interval = intervalSeconds;
    this.dark = false;
    this.history = null;
    this.ids = [];
    this.lastWidth = 0;
    /* Redraw when the width changes (the height is ours); next frame, so the
     * observer never sees a size change made inside its own callback. */
    new ResizeObserver(() => {
      if (canvas.clientWidth === this.lastWidth) return;
      this.lastWidth = canvas.clientWidth;
      requestAnimationFrame(() => this.draw());
    }).observe(canvas);
  }

  setDark(dark) {
    this.dark = dark;
    this.draw();
  }

  update(history, ids) {
    this.history = history;
    this.ids = ids;
    this.draw();
  }

  /* Fits the backing store to the box; returns the 2D context in CSS pixels. */
  fit(canvas, cssHeight) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, canvas.clientWidth);
    if (cssHeight !== undefined) canvas.style.height = `${cssHeight}px`;
    const height = Math.max(1, cssHeight !== undefined ? cssHeight : canvas.clientHeight);
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }

  draw() {
    const rows = this.ids.length;
    const rowH = rows ? Math.max(9, Math.min(22, Math.floor(240 / rows))) : 22;
    const { ctx, width } = this.fit(this.canvas, Math.max(1, rows) * rowH + AXIS_H);
    const samples = this.history ? this.history.samples : [];
    const max = this.history ? this.history.max() : 0;
    const gridW = Math.max(1, width - LABEL_W);
    const colW = gridW / this.capacity;
    const muted = cssVar('--muted') || '#555';
    const font = `12px ${cssVar('--font') || 'system-ui, sans-serif'}`;

    ctx.font = font;
    ctx.textBaseline = 'middle';
    ctx.fillStyle = muted;
    const labelEvery = Math.ceil(12 / rowH);
    this.ids.forEach((id, r) => {
      if (r % labelEvery === 0) ctx.fillText(`shard ${id}`, 0, r * rowH + rowH / 2);
    });

    ctx.fillStyle = cssVar('--heat-empty') || '#eee';
    ctx.fillRect(LABEL_W, 0, gridW, rows * rowH);

    const offset = this.capacity - samples.length; /* newest sample in the last column */
    samples.forEach((sample, c) => {
      const x = LABEL_W + (offset + c) * colW;
      this.ids.forEach((id, r) => {
        const v = sample.get(id);
        if (v === null || v === undefined) return;
        const t = max > 0 ? Math.sqrt(v / max) : 0;
        ctx.fillStyle = heatColor(t, this.dark);
        ctx.fillRect(x, r * rowH, Math.ceil(colW), rowH - 1);
      });
    });

    ctx.fillStyle = muted;
    ctx.textBaseline = 'alphabetic';
    const y = rows * rowH + AXIS_H - 4;
    ctx.textAlign = 'left';
    ctx.fillText(`−${Math.round(this.capacity * this.interval)} s`, LABEL_W, y);
    ctx.textAlign = 'right';
    ctx.fillText('now', width, y);
    ctx.textAlign = 'left';

    this.drawScale();
    this.maxLabel.textContent = `${formatRate(max)} req/s`;
    this.describe(samples, max);
  }

  drawScale() {
    const { ctx, width, height } = this.fit(this.scale);
    for (let x = 0; x < width; x++) {
      ctx.fillStyle = heatColor(x / Math.max(1, width - 1), this.dark);
      ctx.fillRect(x, 0, 1, height);
    }
  }

  describe(samples, max) {
    if (!samples.length || !this.ids.length) {
      this.canvas.setAttribute('aria-label', 'Request rate heatmap: no samples yet');
      this.summary.textContent = '';
      return;
    }
    const last = samples[samples.length - 1];
    let busiest = null;
    for (const id of this.ids) {
      const v = last.get(id);
      if (v !== null && v !== undefined && (busiest === null || v > busiest.v)) busiest = { id, v };
    }
    const now = busiest && busiest.v > 0
      ? `Now the busiest shard is shard ${busiest.id} at ${formatRate(busiest.v)} requests/s.`
      : 'No requests in the last sample.';
    const text = `${now} Peak over the last ${samples.length} samples: ${formatRate(max)} requests/s.`;
    this.canvas.setAttribute('aria-label', `Request rate heatmap of ${this.ids.length} shards. ${text}`);
    this.summary.textContent = text;
  }
}
