/**
 * Inline SVG charts for the status page, plus the small pure helpers they share with it (wall-time formatting in a
 * time zone). No external assets, no scripts: each chart is one `<svg role="img">` that scales to
 * its container.
 */
import { formatIn } from '../clock.ts';
import { escapeHtml } from './html.ts';

/** `tz` when this Node.js knows it, else `UTC` (so a bad zone never breaks the page). */
export function safeTimeZone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz;
  } catch {
    // An unknown zone (config is checked at start; this guards a snapshot from elsewhere): draw in UTC.
    return 'UTC';
  }
}

/** An ISO instant as wall time in `tz`, `YYYY-MM-DD HH:MM:SS` (via `Intl.DateTimeFormat`); `—` for null or invalid. */
export function formatLocal(iso: string | null | undefined, tz: string): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  return formatIn(d, safeTimeZone(tz));
}

/** A number with thousands separators, fixed to en-US so output does not depend on the host locale. */
export function formatCount(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '0';
}

/** A chart's data point with its tooltip. */
interface Bar {
  x: number;
  w: number;
  y: number;
  h: number;
  title: string;
  cls: string;
}

const W = 720;
const H = 240;
const PAD = { top: 24, right: 12, bottom: 42, left: 44 };
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;
const BASE_Y = PAD.top + PLOT_H;

const r1 = (n: number) => Math.round(n * 10) / 10;

const rect = (b: Bar) =>
  `<rect class="${b.cls}" x="${r1(b.x)}" y="${r1(b.y)}" width="${r1(b.w)}" height="${r1(b.h)}"><title>${escapeHtml(b.title)}</title></rect>`;

/** The frame every chart shares: y-axis max label and gridline, baseline, "no data yet" when everything is 0. */
function frame(max: number, unit: string): string {
  const parts = [`<line class="axis" x1="${PAD.left}" y1="${BASE_Y}" x2="${W - PAD.right}" y2="${BASE_Y}"/>`];
  parts.push(`<text class="tick" x="${PAD.left - 6}" y="${BASE_Y + 4}" text-anchor="end">0</text>`);
  if (max > 0) {
    parts.push(`<line class="grid" x1="${PAD.left}" y1="${PAD.top}" x2="${W - PAD.right}" y2="${PAD.top}"/>`);
    parts.push(
      `<text class="tick max-label" x="${PAD.left - 6}" y="${PAD.top + 4}" text-anchor="end">${escapeHtml(formatCount(max))}</text>`,
    );
    parts.push(
      `<text class="tick" x="${PAD.left}" y="${PAD.top - 8}">max ${escapeHtml(formatCount(max))} ${escapeHtml(unit)}</text>`,
    );
  } else {
    parts.push(
      `<text class="empty" x="${PAD.left + PLOT_W / 2}" y="${PAD.top + PLOT_H / 2}" text-anchor="middle">no data yet</text>`,
    );
  }
  return parts.join('');
}

function svg(id: string, label: string, body: string): string {
  return (
    `<svg id="${id}" class="chart" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${W} ${H}" ` +
    `preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">${body}</svg>`
  );
}

/** The local hour (0–23) of an instant in `tz`. */
function localHour(d: Date, tz: string): number {
  const h = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: '2-digit', hourCycle: 'h23' }).format(d);
  return Number.parseInt(h, 10);
}

/**
 * "Messages deleted per hour (48 h)": one bar per bucket (all of them, zero-height bars included, each with a
 * `<title>` tooltip) inside `<g class="bars">`, hour labels in `tz` about every 6 bars (at local hours divisible by
 * 6; the date at midnight).
 */
export function deletedPerHourChart(data: { hour: string; messages: number }[], tz: string): string {
  const zone = safeTimeZone(tz);
  const values = data.map((d) => (Number.isFinite(d.messages) && d.messages > 0 ? d.messages : 0));
  const max = Math.max(0, ...values);
  const n = Math.max(1, data.length);
  const slot = PLOT_W / n;
  const bw = Math.max(1, slot * 0.8);
  const bars: string[] = [];
  const labels: string[] = [];
  const labelled: number[] = [];
  data.forEach((d, i) => {
    const v = values[i] ?? 0;
    const h = max > 0 ? (v / max) * PLOT_H : 0;
    const x = PAD.left + i * slot + (slot - bw) / 2;
    const local = formatLocal(d.hour, zone);
    bars.push(
      rect({
        x,
        w: bw,
        y: BASE_Y - h,
        h,
        cls: 'bar',
        title: `${local.slice(0, 16)}: ${formatCount(v)} message${v === 1 ? '' : 's'} deleted`,
      }),
    );
    const at = new Date(d.hour);
    if (!Number.isNaN(at.getTime()) && localHour(at, zone) % 6 === 0) labelled.push(i);
  });
  // Fall back to every 6th bar when the zone's hours never hit a multiple of 6 (cannot happen for real zones).
  const ticks = labelled.length > 0 ? labelled : data.map((_, i) => i).filter((i) => i % 6 === 0);
  for (const i of ticks) {
    const d = data[i];
    if (!d) continue;
    const local = formatLocal(d.hour, zone);
    const midnight = local.slice(11, 13) === '00';
    const text = midnight ? local.slice(5, 10) : local.slice(11, 16);
    const x = PAD.left + i * slot + slot / 2;
    labels.push(`<line class="tickmark" x1="${r1(x)}" y1="${BASE_Y}" x2="${r1(x)}" y2="${BASE_Y + 4}"/>`);
    labels.push(
      `<text class="tick${midnight ? ' day' : ''}" x="${r1(x)}" y="${BASE_Y + 16}" text-anchor="middle">${escapeHtml(text)}</text>`,
    );
  }
  const total = values.reduce((a, b) => a + b, 0);
  const label = `Messages deleted per hour over the last 48 hours (${tz}): ${formatCount(total)} in total, at most ${formatCount(max)} in one hour`;
  return svg(
    'chart-deleted-per-hour',
    label,
    frame(max, 'messages') +
      `<g class="bars">${bars.join('')}</g>` +
      `<g class="x-labels">${labels.join('')}</g>` +
      `<text class="tick" x="${W - PAD.right}" y="${H - 6}" text-anchor="end">hour (${escapeHtml(tz)})</text>`,
  );
}

/**
 * "Users (30 days)": one bar per day, the registered users at that day's end (today: so far), each with a tooltip
 * that also says how many joined that day, inside `<g class="bars">`; the date under every 5th bar.
 */
export function usersPerDayChart(data: { day: string; total: number; new: number }[]): string {
  const num = (v: number) => (Number.isFinite(v) && v > 0 ? v : 0);
  const max = Math.max(0, ...data.map((d) => num(d.total)));
  const slot = PLOT_W / Math.max(1, data.length);
  const bw = Math.max(2, slot * 0.7);
  const bars: string[] = [];
  const labels: string[] = [];
  data.forEach((d, i) => {
    const v = num(d.total);
    const h = max > 0 ? (v / max) * PLOT_H : 0;
    const x = PAD.left + i * slot + (slot - bw) / 2;
    const title = `${d.day}: ${formatCount(v)} users, ${formatCount(num(d.new))} new`;
    bars.push(rect({ x, w: bw, y: BASE_Y - h, h, cls: 'bar', title }));
    if ((data.length - 1 - i) % 5 === 0) {
      const cx = PAD.left + i * slot + slot / 2;
      labels.push(
        `<text class="tick" x="${r1(cx)}" y="${BASE_Y + 16}" text-anchor="middle">${escapeHtml(d.day.slice(5))}</text>`,
      );
    }
  });
  const last = data.at(-1);
  const joined = data.reduce((a, d) => a + num(d.new), 0);
  const label = `Registered users over the last ${data.length} days: ${formatCount(num(last?.total ?? 0))} now, ${formatCount(joined)} joined`;
  return svg(
    'chart-users-per-day',
    label,
    frame(max, 'users') + `<g class="bars">${bars.join('')}</g>` + `<g class="x-labels">${labels.join('')}</g>`,
  );
}

/** The stacked series of the tokens chart, bottom to top, with their colours' CSS classes. */
export const TOKEN_SERIES = [
  { key: 'verified', label: 'verified', cls: 'seg-verified' },
  { key: 'bypassed', label: 'bypassed', cls: 'seg-bypassed' },
  { key: 'not_used', label: 'not used', cls: 'seg-not-used' },
] as const;

/**
 * "Tokens per day (14 days)": one stacked column per day, segments verified / bypassed / not used bottom to top,
 * inside `<g class="stacks">`. Zero-height segments are left out, so the chart has exactly one `<rect>` per
 * non-zero value. A legend sits above the plot.
 */
export function tokensPerDayChart(
  data: { day: string; verified: number; bypassed: number; not_used: number }[],
): string {
  const num = (v: number) => (Number.isFinite(v) && v > 0 ? v : 0);
  const totals = data.map((d) => num(d.verified) + num(d.bypassed) + num(d.not_used));
  const max = Math.max(0, ...totals);
  const n = Math.max(1, data.length);
  const slot = PLOT_W / n;
  const bw = Math.max(2, slot * 0.7);
  const segs: string[] = [];
  const labels: string[] = [];
  data.forEach((d, i) => {
    const x = PAD.left + i * slot + (slot - bw) / 2;
    let y = BASE_Y;
    for (const s of TOKEN_SERIES) {
      const v = num(d[s.key]);
      if (v === 0 || max === 0) continue;
      const h = (v / max) * PLOT_H;
      y -= h;
      segs.push(
        rect({
          x,
          w: bw,
          y,
          h,
          cls: `seg ${s.cls}`,
          title: `${d.day}: ${formatCount(v)} ${s.label} (of ${formatCount(totals[i] ?? 0)})`,
        }),
      );
    }
    const cx = PAD.left + i * slot + slot / 2;
    labels.push(
      `<text class="tick" x="${r1(cx)}" y="${BASE_Y + 16}" text-anchor="middle">${escapeHtml(d.day.slice(5))}</text>`,
    );
  });
  const legend = TOKEN_SERIES.map((s, i) => {
    const x = W - PAD.right - (TOKEN_SERIES.length - i) * 96;
    return `<rect class="${s.cls}" x="${x}" y="6" width="10" height="10"/><text class="tick" x="${x + 14}" y="15">${escapeHtml(s.label)}</text>`;
  }).join('');
  const sum = (k: 'verified' | 'bypassed' | 'not_used') => data.reduce((a, d) => a + num(d[k]), 0);
  const label =
    `Tokens created per day over the last ${data.length} days: ` +
    `${formatCount(sum('verified'))} verified, ${formatCount(sum('bypassed'))} bypassed, ${formatCount(sum('not_used'))} not used`;
  return svg(
    'chart-tokens-per-day',
    label,
    frame(max, 'tokens') +
      `<g class="stacks">${segs.join('')}</g>` +
      `<g class="x-labels">${labels.join('')}</g>` +
      `<g class="legend">${legend}</g>`,
  );
}
