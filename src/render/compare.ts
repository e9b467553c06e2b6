/**
 * A compare report for people (one line per table with ✓ or ✗, the ranges and
 * keys that differ under it, a summary line), for machines (stable JSON,
 * snake_case), and the progress line of a long table.
 */
import chalk from 'chalk';
import { describeHolder, type CompareProgress, type CompareReport, type DifferingRange, type KeyValues, type TableComparison, type WaitedFor } from '../operations/index.js';

const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, word: string) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

/** `(order_code, line)=(B-2, 17)`, as PostgreSQL prints keys. */
export function renderKey(key: KeyValues): string {
  const names = Object.keys(key);
  return `(${names.join(', ')})=(${names.map((n) => key[n]).join(', ')})`;
}

function seconds(s: number | null): string {
  return s === null ? '' : s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

function renderRange(r: DifferingRange): string[] {
  const counts = [
    r.missingCount && `${count(r.missingCount)} missing on the subscriber`,
    r.extraCount && `${count(r.extraCount)} extra on the subscriber`,
    r.changedCount && `${count(r.changedCount)} changed`,
  ].filter(Boolean);
  const out = [`    from ${renderKey(r.from)} to ${renderKey(r.to)}: ${counts.join(', ')}`];
  const list = (label: string, keys: KeyValues[], total: number) => {
    for (const k of keys) out.push(`      ${label} ${renderKey(k)}`);
    if (total > keys.length) out.push(chalk.dim(`      … and ${count(total - keys.length)} more ${label}`));
  };
  list('missing', r.missing, r.missingCount);
  list('extra', r.extra, r.extraCount);
  list('changed', r.changed, r.changedCount);
  return out;
}

function pauses(t: TableComparison): string {
  if (!t.lockAttempts || t.lockAttempts <= 1) return `writers paused ${t.writersPausedMs} ms`;
  return `writers paused ${t.writersPausedMs} ms in ${t.lockAttempts} lock attempts, longest ${t.writersLongestPauseMs} ms`;
}

function waitedLines(waited: WaitedFor[]): string[] {
  return waited.map((w) => chalk.dim(`    waited ${seconds(w.waitedMs / 1000)} for ${describeHolder(w)} before locking`));
}

function renderTable(t: TableComparison): string[] {
  if (!t.compared) return [chalk.yellow(`- ${t.table}  not comparable yet: ${t.state}`)];
  const timing = `(${seconds(t.seconds)}, ${pauses(t)})`;
  if (t.equal) return [`${chalk.green('✓')} ${t.table}  ${plural(t.providerRows!, 'row')}  ${chalk.dim(timing)}`, ...waitedLines(t.waitedFor)];
  const rows = t.providerRows === t.subscriberRows ? `${plural(t.providerRows!, 'row')} on both sides, contents differ` : `provider ${count(t.providerRows!)} rows, subscriber ${count(t.subscriberRows!)}`;
  const out = [`${chalk.red('✗')} ${t.table}  ${rows}  ${chalk.dim(timing)}`, ...waitedLines(t.waitedFor)];
  for (const r of t.differingRanges) out.push(...renderRange(r));
  if (t.moreDifferingRanges) out.push(`    … and ${plural(t.moreDifferingRanges, 'more differing range')}, not narrowed`);
  return out;
}

export function compareSummaryLine(report: CompareReport): string {
  const compared = report.tables.filter((t) => t.compared);
  const differ = compared.filter((t) => !t.equal).length;
  const waiting = report.tables.length - compared.length;
  const parts = [`${plural(compared.length - differ, 'table')} equal`, `${count(differ)} different`];
  if (waiting) parts.push(`${count(waiting)} not comparable yet`);
  return `${report.equal ? 'Equal' : 'Different'}: ${parts.join(', ')}.`;
}

export function renderCompareHuman(report: CompareReport): string {
  const out: string[] = [];
  let pair = '';
  for (const t of report.tables) {
    const heading = `queue ${t.queue}${t.direction === 'reverse' ? ' (reverse replication after the switchover)' : ''}: ${t.providerNode} (${t.provider}) → ${t.node} (${t.subscriber})`;
    if (heading !== pair) {
      if (pair) out.push('');
      out.push(chalk.bold(heading));
      pair = heading;
    }
    out.push(...renderTable(t));
  }
  if (!report.tables.length) out.push('No replicated tables to compare.');
  out.push('', chalk.bold(compareSummaryLine(report)));
  return out.join('\n');
}

const rangeToJson = (r: DifferingRange) => ({
  from: r.from,
  to: r.to,
  provider_rows: r.providerRows,
  subscriber_rows: r.subscriberRows,
  missing: r.missing,
  extra: r.extra,
  changed: r.changed,
  missing_count: r.missingCount,
  extra_count: r.extraCount,
  changed_count: r.changedCount,
});

/** The JSON form (format_version 1); docs/compare.md describes every field. */
export function compareToJson(report: CompareReport): Record<string, unknown> {
  return {
    format_version: 1,
    file: report.file,
    equal: report.equal,
    tables: report.tables.map((t) => ({
      name: t.table,
      queue: t.queue,
      direction: t.direction,
      node: t.node,
      provider_node: t.providerNode,
      provider: t.provider,
      subscriber: t.subscriber,
      key_columns: t.keyColumns,
      state: t.state,
      compared: t.compared,
      equal: t.equal,
      provider_rows: t.providerRows,
      subscriber_rows: t.subscriberRows,
      chunks: t.chunks,
      differing_ranges: t.differingRanges.map(rangeToJson),
      more_differing_ranges: t.moreDifferingRanges,
      writers_paused_ms: t.writersPausedMs,
      writers_longest_pause_ms: t.writersLongestPauseMs,
      lock_attempts: t.lockAttempts,
      waited_for: t.waitedFor.map((w) => ({
        pid: w.pid,
        prepared_gid: w.preparedGid,
        user: w.user,
        application_name: w.applicationName,
        state: w.state,
        since: w.since ? w.since.toISOString() : null,
        waited_ms: w.waitedMs,
      })),
      seconds: t.seconds === null ? null : Number(t.seconds.toFixed(3)),
    })),
  };
}

/** `public.events  1,250,000 / ~4,000,000 rows (31%)  12 s` */
export function renderCompareProgress(p: CompareProgress): string {
  if (p.waitingFor?.length) return `${p.node}: ${p.table}  waiting for ${p.waitingFor.map(describeHolder).join(', ')} to end before locking (writers are not held up)  ${seconds(p.seconds)}`;
  const of = p.rowsEstimated && p.rowsEstimated > 0 ? ` / ~${count(p.rowsEstimated)} rows (${Math.min(99, Math.floor((100 * p.rowsDone) / p.rowsEstimated))}%)` : ' rows';
  return `${p.node}: ${p.table}  ${count(p.rowsDone)}${of}  ${seconds(p.seconds)}`;
}
