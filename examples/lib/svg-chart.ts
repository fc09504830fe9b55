/**
 * A small hand-written SVG line chart (no dependency): one panel per dataset side by side, one
 * polyline with point markers per series, an optional dashed horizontal reference line (the
 * original model), axes with ticks, and one shared legend. The y axis is logarithmic by default
 * because perplexity grows multiplicatively as parameters are removed.
 */

export interface Series {
  label: string;
  color: string;
  /** [x, y] points; drawn in ascending x */
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  series: Series[];
  reference?: { label: string; y: number };
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  panels: Panel[];
  logY?: boolean;
  /** x range (default: the data's, padded) */
  xDomain?: [number, number];
}

const PANEL_W = 340;
const PANEL_H = 260;
const MARGIN = { left: 62, right: 14, top: 34, bottom: 46 };
const LEGEND_ROW = 18;

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// Below 0.01 (KL values on a log axis) two decimals would print 0: use one significant digit, e.g. 2e-5.
const fmt = (v: number) =>
  Number.isInteger(v) ? String(v) : v !== 0 && Math.abs(v) < 0.01 ? v.toExponential(0) : v.toFixed(2).replace(/0+$/, '').replace(/\.$/, '');

/** "Nice" tick values covering [lo, hi]: 1-2-5 steps on a linear axis. */
export function linearTicks(lo: number, hi: number, target = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Ticks for a log axis over [lo, hi] (lo > 0): 1-2-5 per decade, thinned to about `target`. */
export function logTicks(lo: number, hi: number, target = 6): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(Number(v.toPrecision(12)));
    }
  }
  if (ticks.length >= 2) {
    const every = Math.ceil(ticks.length / target);
    return ticks.filter((_, i) => i % every === 0);
  }
  // less than one 1-2-5 step inside the range: fall back to linear ticks
  return linearTicks(lo, hi, Math.min(target, 4)).filter((v) => v > 0);
}

function formatTick(v: number): string {
  if (v >= 1e4) return v.toLocaleString('en-US');
  if (v >= 100) return v.toFixed(0);
  return fmt(v);
}

function panelSvg(panel: Panel, spec: ChartSpec, ox: number, oy: number, xDomain: [number, number]): string[] {
  const logY = spec.logY ?? true;
  const ys = panel.series.flatMap((s) => s.points.map((p) => p[1])).concat(panel.reference ? [panel.reference.y] : []).filter((y) => Number.isFinite(y) && (!logY || y > 0));
  let yLo = ys.length > 0 ? Math.min(...ys) : 1;
  let yHi = ys.length > 0 ? Math.max(...ys) : 10;
  if (logY) {
    yLo /= 1.05;
    yHi *= 1.05;
  } else {
    const pad = (yHi - yLo) * 0.05 || 1;
    yLo -= pad;
    yHi += pad;
  }
  const tY = (y: number) => (logY ? Math.log(y) : y);
  const plotW = PANEL_W - MARGIN.left - MARGIN.right;
  const plotH = PANEL_H - MARGIN.top - MARGIN.bottom;
  const x0 = ox + MARGIN.left;
  const y0 = oy + MARGIN.top;
  const sx = (x: number) => x0 + ((x - xDomain[0]) / (xDomain[1] - xDomain[0])) * plotW;
  const sy = (y: number) => y0 + plotH - ((tY(y) - tY(yLo)) / (tY(yHi) - tY(yLo))) * plotH;
  const out: string[] = [];
  out.push(`<g class="panel">`);
  out.push(`<text x="${x0 + plotW / 2}" y="${oy + 20}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${plotW}" height="${plotH}" fill="none" stroke="#444" stroke-width="1"/>`);
  for (const t of linearTicks(xDomain[0], xDomain[1])) {
    if (t < xDomain[0] - 1e-12 || t > xDomain[1] + 1e-12) continue;
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${y0 + plotH}" x2="${x}" y2="${y0 + plotH + 4}" stroke="#444"/>`);
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + plotH}" stroke="#ddd" stroke-width="0.5"/>`);
    out.push(`<text x="${x}" y="${y0 + plotH + 16}" text-anchor="middle" font-size="10">${fmt(t)}</text>`);
  }
  for (const t of logY ? logTicks(yLo, yHi) : linearTicks(yLo, yHi)) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${x0 - 4}" y1="${y}" x2="${x0}" y2="${y}" stroke="#444"/>`);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + plotW}" y2="${y}" stroke="#ddd" stroke-width="0.5"/>`);
    out.push(`<text x="${x0 - 6}" y="${Number(y) + 3}" text-anchor="end" font-size="10">${formatTick(t)}</text>`);
  }
  out.push(`<text x="${x0 + plotW / 2}" y="${y0 + plotH + 34}" text-anchor="middle" font-size="11">${escapeXml(spec.xLabel)}</text>`);
  const yMid = y0 + plotH / 2;
  out.push(`<text x="${ox + 14}" y="${yMid}" text-anchor="middle" font-size="11" transform="rotate(-90 ${ox + 14} ${yMid})">${escapeXml(spec.yLabel)}${logY ? ' (log)' : ''}</text>`);
  if (panel.reference && Number.isFinite(panel.reference.y)) {
    const y = sy(panel.reference.y).toFixed(1);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + plotW}" y2="${y}" stroke="#000" stroke-width="1" stroke-dasharray="5 3"><title>${escapeXml(`${panel.reference.label}: ${panel.reference.y.toFixed(3)}`)}</title></line>`);
  }
  for (const s of panel.series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]) && (!logY || p[1] > 0)).sort((a, b) => a[0] - b[0]);
    if (pts.length === 0) continue;
    const d = pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`);
    for (const p of pts) {
      out.push(`<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="2.6" fill="${s.color}"><title>${escapeXml(`${s.label}: x ${p[0].toFixed(3)}, ${p[1].toFixed(3)}`)}</title></circle>`);
    }
  }
  out.push(`</g>`);
  return out;
}

/** The whole chart as an SVG document (UTF-8 text). */
export function lineChartSvg(spec: ChartSpec): string {
  if (spec.panels.length === 0) throw new Error('a chart needs at least one panel');
  const xs = spec.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q[0])));
  const xDomain: [number, number] = spec.xDomain ?? (xs.length > 0 ? [Math.min(0, ...xs), Math.max(1, ...xs)] : [0, 1]);
  const labels = new Map<string, string>();
  for (const p of spec.panels) for (const s of p.series) labels.set(s.label, s.color);
  const reference = spec.panels.find((p) => p.reference)?.reference;
  const legend: Array<{ label: string; color: string; dashed: boolean }> = [...labels].map(([label, color]) => ({ label, color, dashed: false }));
  if (reference) legend.push({ label: reference.label, color: '#000', dashed: true });
  const perRow = Math.max(1, Math.floor((PANEL_W * spec.panels.length) / 230));
  const legendRows = Math.ceil(legend.length / perRow);
  const width = PANEL_W * spec.panels.length;
  const height = 30 + PANEL_H + 10 + legendRows * LEGEND_ROW + 6;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  spec.panels.forEach((p, i) => out.push(...panelSvg(p, spec, i * PANEL_W, 30, xDomain)));
  const ly = 30 + PANEL_H + 10;
  legend.forEach((item, i) => {
    const x = 20 + (i % perRow) * 230;
    const y = ly + Math.floor(i / perRow) * LEGEND_ROW + 10;
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${item.color}" stroke-width="2"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${x + 28}" y="${y + 4}" font-size="11">${escapeXml(item.label)}</text>`);
  });
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
