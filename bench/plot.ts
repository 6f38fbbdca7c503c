// bench/plot.ts — the cost-growth plot of the benchmark (issue 16): from one or more result
// JSONs (bench/results/*.json; sizes merged, a later file wins for a size it also has), an SVG
// drawn here — three log-log panels against the number of users: whole cycles and restarts,
// the steady cycle by phase, the daemon's peak RSS — turned into a PNG by Debian's chromium
// through playwright-core (the dev dependency the browser test uses). No other dependency.
//   node build/bench/plot.js RESULT.json [MORE.json…] [--out FILE.png]   (npm run bench:plot -- …)
// The benchmark calls renderPlot() on its own JSON at the end of a run. Benchmark-only code.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = '/usr/bin/chromium';

/** The fields of a size of the result JSON the plot reads (older files lack some: skipped). */
export interface PlotSize {
  users: number;
  hosts?: number;
  coldCycleMs?: number;
  steadyCycleMs?: number;
  idleCycleMs?: number;
  fixedCycleMs?: number | null;
  fixed10Ms?: number | null;
  startFromSnapshotMs?: number | null;
  baselineRestoreMs?: number;
  baselineLdapsearchMs?: number;
  peakRssMB?: number;
  phases?: { steady?: Record<string, number> };
}

interface Series {
  label: string;
  color: string;
  dash?: string;
  points: [number, number][];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

function series(
  sizes: readonly PlotSize[],
  label: string,
  pick: (s: PlotSize) => number | null | undefined,
  i: number,
  dash?: string,
): Series {
  const points: [number, number][] = [];
  for (const s of sizes) {
    const v = pick(s);
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) points.push([s.users, v]);
  }
  return { label, color: PALETTE[i % PALETTE.length]!, dash, points };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmtTick(v: number, unit: string): string {
  if (unit === 'ms' && v >= 1000) return `${v / 1000} s`;
  if (v >= 1000) return `${v / 1000}k`;
  return String(v);
}

/** One log-log panel at (x0, y0) of w × h. */
function panel(o: {
  x0: number;
  y0: number;
  w: number;
  h: number;
  title: string;
  unit: string;
  series: Series[];
  xs: number[];
  hline?: { y: number; label: string };
}): string {
  const drawn = o.series.filter((s) => s.points.length > 0);
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
  if (o.hline) ys.push(o.hline.y);
  const out: string[] = [];
  const L = o.x0 + 70;
  const R = o.x0 + o.w - 15;
  const T = o.y0 + 40;
  const B = o.y0 + o.h - 175;
  out.push(`<text x="${(L + R) / 2}" y="${o.y0 + 22}" text-anchor="middle" font-size="17" font-weight="bold">${esc(o.title)}</text>`);
  if (ys.length === 0 || o.xs.length === 0) {
    out.push(`<text x="${(L + R) / 2}" y="${(T + B) / 2}" text-anchor="middle">no data</text>`);
    return out.join('\n');
  }
  const lx0 = Math.floor(Math.log10(Math.min(...o.xs)) - 0.05);
  const lx1 = Math.ceil(Math.log10(Math.max(...o.xs)) + 0.05);
  const ly0 = Math.floor(Math.log10(Math.min(...ys)));
  const ly1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (x: number): number => L + ((Math.log10(x) - lx0) / (lx1 - lx0)) * (R - L);
  const Y = (y: number): number => B - ((Math.log10(y) - ly0) / Math.max(1, ly1 - ly0)) * (B - T);
  // grid: decades, and 2 and 5 within them
  for (let d = ly0; d <= ly1; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (v > 10 ** ly1 || (m > 1 && d === ly1)) continue;
      const y = Y(v);
      out.push(`<line x1="${L}" x2="${R}" y1="${y}" y2="${y}" stroke="${m === 1 ? '#bbb' : '#eee'}"/>`);
      if (m === 1 || ly1 - ly0 <= 2)
        out.push(`<text x="${L - 6}" y="${y + 4}" text-anchor="end" font-size="12">${fmtTick(Number(v.toPrecision(3)), o.unit)}</text>`);
    }
  }
  for (const x of o.xs) {
    out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${T}" y2="${B}" stroke="#ddd"/>`);
    out.push(`<text x="${X(x)}" y="${B + 16}" text-anchor="middle" font-size="12">${fmtTick(x, '')}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${R - L}" height="${B - T}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(L + R) / 2}" y="${B + 34}" text-anchor="middle" font-size="13">users (log)</text>`);
  out.push(
    `<text x="${o.x0 + 16}" y="${(T + B) / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 ${o.x0 + 16} ${(T + B) / 2})">${esc(o.unit)} (log)</text>`,
  );
  // linear growth from the smallest size of the first series: the slope "cost grows with users"
  const ref = drawn[0]?.points[0];
  if (ref) {
    const xEnd = Math.max(...o.xs);
    const yEnd = ref[1] * (xEnd / ref[0]);
    out.push(
      `<line x1="${X(ref[0])}" y1="${Y(ref[1])}" x2="${X(xEnd)}" y2="${Y(Math.min(yEnd, 10 ** ly1))}" stroke="#999" stroke-dasharray="2 4" clip-path="url(#c${o.x0})"/>`,
    );
  }
  out.push(`<clipPath id="c${o.x0}"><rect x="${L}" y="${T}" width="${R - L}" height="${B - T}"/></clipPath>`);
  if (o.hline) {
    const y = Y(o.hline.y);
    out.push(`<line x1="${L}" x2="${R}" y1="${y}" y2="${y}" stroke="#d62728" stroke-dasharray="8 4"/>`);
    out.push(`<text x="${R - 4}" y="${y - 5}" text-anchor="end" font-size="12" fill="#d62728">${esc(o.hline.label)}</text>`);
  }
  for (const s of drawn) {
    const pts = s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    for (const [x, y] of s.points) out.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="4" fill="${s.color}"/>`);
  }
  // legend under the panel, two columns
  const legend = [...drawn, { label: 'linear in users (from the first point)', color: '#999', dash: '2 4', points: [] }];
  legend.forEach((s, i) => {
    const lx = L + (i % 2) * ((R - L) / 2);
    const ly = B + 56 + Math.floor(i / 2) * 20;
    out.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    out.push(`<text x="${lx + 32}" y="${ly}" font-size="12">${esc(s.label)}</text>`);
  });
  return out.join('\n');
}

/** The SVG of the three panels. */
export function plotSvg(sizes: readonly PlotSize[], subtitle: string): string {
  const xs = sizes.map((s) => s.users);
  const W = 1800;
  const H = 640;
  const pw = W / 3;
  const phase = (k: string) => (s: PlotSize) => s.phases?.steady?.[k];
  const cycles = [
    series(sizes, 'cold first cycle', (s) => s.coldCycleMs, 0),
    series(sizes, 'start from a snapshot (to full kernel state)', (s) => s.startFromSnapshotMs, 1),
    series(sizes, 'ldapsearch full fetch', (s) => s.baselineLdapsearchMs, 2, '6 3'),
    series(sizes, 'steady cycle (1 % of users move)', (s) => s.steadyCycleMs, 3),
    series(sizes, 'idle cycle', (s) => s.idleCycleMs, 8),
    series(sizes, 'fixed 10-user change', (s) => s.fixed10Ms ?? s.fixedCycleMs, 4),
    series(sizes, 'optimal restore (steady moves)', (s) => s.baselineRestoreMs, 5, '6 3'),
  ];
  const phases = [
    series(sizes, 'LDAP', phase('ldapMs'), 0),
    series(sizes, 'MySQL', phase('mysqlMs'), 1),
    series(sizes, 'plan', phase('planMs'), 2),
    series(sizes, 'read-back', phase('readMs'), 3),
    series(sizes, 'diff', phase('diffMs'), 4),
    series(sizes, 'apply', phase('applyMs'), 5),
    series(sizes, 'total', phase('totalMs'), 8, '6 3'),
  ];
  const rss = [series(sizes, 'daemon peak RSS', (s) => s.peakRssMB, 0)];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 40}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="19">reselqos: cost growth with the directory (medians; ${esc(subtitle)})</text>`,
    `<g transform="translate(0 40)">`,
    panel({ x0: 0, y0: 0, w: pw, h: H, title: 'whole cycles and restarts', unit: 'ms', series: cycles, xs }),
    panel({ x0: pw, y0: 0, w: pw, h: H, title: 'steady cycle by phase', unit: 'ms', series: phases, xs }),
    panel({
      x0: 2 * pw,
      y0: 0,
      w: pw,
      h: H,
      title: 'memory',
      unit: 'MB',
      series: rss,
      xs,
      hline: { y: 250, label: 'target at 100k: 250 MB' },
    }),
    `</g></svg>`,
  ].join('\n');
}

/** Sizes of several result files, merged by users (a later file wins), in order. */
export function mergeSizes(files: readonly { sizes: PlotSize[] }[]): PlotSize[] {
  const by = new Map<number, PlotSize>();
  for (const f of files) for (const s of f.sizes) by.set(s.users, s);
  return [...by.values()].sort((a, b) => a.users - b.users);
}

/** Renders the SVG to `pngPath` with chromium (headless); also writes the SVG beside it. */
export async function renderPlot(sizes: readonly PlotSize[], subtitle: string, pngPath: string): Promise<void> {
  const svg = plotSvg(sizes, subtitle);
  writeFileSync(pngPath.replace(/\.png$/, '.svg'), `${svg}\n`);
  const { chromium } = await import('playwright-core');
  const home = mkdtempSync(join(tmpdir(), 'rq-plot-chromium-'));
  try {
    const browser = await chromium.launchPersistentContext(home, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1800, height: 680 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
      ],
    });
    try {
      const page = await browser.newPage();
      await page.setContent(`<!doctype html><html><body style="margin:0">${svg}</body></html>`);
      await page.locator('svg').screenshot({ path: pngPath });
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function cli(argv: string[]): Promise<number> {
  const files: string[] = [];
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = argv[++i] ?? null;
    else files.push(argv[i]!);
  }
  if (files.length === 0) {
    console.error('usage: npm run bench:plot -- RESULT.json [MORE.json…] [--out FILE.png]');
    return 64;
  }
  const parsed = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { meta?: { date?: string }; sizes: PlotSize[] });
  const sizes = mergeSizes(parsed);
  const png = resolve(out ?? files[files.length - 1]!.replace(/\.json$/, '.png'));
  const dates = [...new Set(parsed.map((p) => p.meta?.date ?? '?'))].join(', ');
  await renderPlot(sizes, `runs of ${dates}`, png);
  console.log(`plot: ${png} (${sizes.map((s) => s.users).join(', ')} users)`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await cli(process.argv.slice(2));
}
