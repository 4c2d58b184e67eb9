/*
 * app — the dashboard's entry point (an ES module loaded by index.html):
 * builds the views and starts polling.
 *
 *   live.js     polling of /shards, /health, /v1/hotkeys; overview, balance, hot keys
 *   ring.js     the hash ring picture and the key lookup
 *   heatmap.js  request rate per shard over time
 *   data.js     the data browser (keys, scans, counters, users)
 *   stats.js    arithmetic and formatting, no DOM
 *   api.js      fetch helpers
 *
 * The page follows the system's light or dark scheme; the drawings, which
 * take their colours from script, are redrawn when it changes.
 */
import { RingView } from './ring.js';
import { Heatmap } from './heatmap.js';
import { LiveView, INTERVAL_MS, SAMPLES } from './live.js';
import { KvPanel, ScanPanel, CounterPanel, UsersPanel } from './data.js';

function $(id) {
  return document.getElementById(id);
}

function main() {
  const ring = new RingView({
    svg: $('ring-svg'),
    desc: $('ring-desc'),
    legend: $('ring-legend'),
    form: $('place-form'),
    input: $('place-key'),
    result: $('place-result'),
  });
  const heatmap = new Heatmap({
    canvas: $('heatmap'),
    scale: $('heat-scale'),
    maxLabel: $('heat-max'),
    summary: $('heat-summary'),
    capacity: SAMPLES,
    intervalSeconds: INTERVAL_MS / 1000,
  });
  const live = new LiveView({ ring, heatmap });

  const kv = new KvPanel();
  new ScanPanel(kv);
  new CounterPanel();
  new UsersPanel();

  const scheme = window.matchMedia('(prefers-color-scheme: dark)');
  const applyScheme = () => {
    ring.setDark(scheme.matches);
    heatmap.setDark(scheme.matches);
    live.setDark(scheme.matches);
  };
  scheme.addEventListener('change', applyScheme);
  applyScheme();

  const pause = $('pause');
  pause.addEventListener('click', () => {
    const paused = pause.getAttribute('aria-pressed') !== 'true';
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume live updates' : 'Pause live updates';
    if (paused) {
      live.pause();
      $('updated').textContent = 'paused';
    } else {
      live.start();
    }
  });

  live.start();
}

main();
