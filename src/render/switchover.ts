/**
 * A switchover for people (each step with its time as it finishes, the
 * sessions that were ended, the measured write-unavailability) and for
 * machines (stable JSON of the same report).
 */
import chalk from 'chalk';
import type { EndedSession, StepReport, SwitchoverReport } from '../operations/index.js';

const pad = (text: string, width: number) => text.padEnd(width);

/** One line per finished step: `  ✓ fence        12 ms  detail`. */
export function renderSwitchoverStep(step: StepReport): string {
  return `  ${chalk.green('✓')} ${pad(step.step, 13)} ${String(step.ms).padStart(6)} ms  ${chalk.dim(step.detail)}`;
}

export function renderEndedSessions(sessions: readonly EndedSession[]): string {
  if (!sessions.length) return '    no other session was connected';
  const rows = sessions.map((s) => [
    String(s.pid),
    s.user ?? '-',
    s.applicationName || '-',
    s.clientAddress ?? 'local',
    s.state ?? '-',
    s.transactionStart ? s.transactionStart.toISOString() : '-',
  ]);
  const head = ['pid', 'user', 'application_name', 'client', 'state', 'transaction start'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `    ${cells.map((c, i) => pad(c, widths[i]!)).join('  ')}`.trimEnd();
  return ['    ended sessions (their open transactions rolled back):', line(head), ...rows.map(line)].join('\n');
}

/** The heading printed before the steps. */
export function renderSwitchoverStart(report: SwitchoverReport): string {
  const verb = report.direction === 'forward' ? 'Switching over' : 'Switching back';
  return `${verb} queue "${report.queue}" from "${report.from.node}" (${report.from.display}) to "${report.to.node}" (${report.to.display})`;
}

/** The closing lines: the outcome and the write-unavailability window. */
export function renderSwitchoverSummary(report: SwitchoverReport): string {
  if (report.outcome === 'already-done') return `Nothing to do: ${report.note}.`;
  const out = [''];
  if (report.reverse && report.direction === 'forward') {
    out.push(
      `Reverse replication: queue "${report.reverse.queue}" on "${report.to.node}" → "${report.from.node}" (consumer "${report.reverse.consumer}").`,
      `  Run its ticker on "${report.to.node}" and its worker into "${report.from.node}" (pgconvey run does both), so a switch back loses nothing.`,
    );
  }
  if (!report.reverse && report.direction === 'forward' && report.outcome === 'switched') {
    out.push(`No reverse replication: a switch back to "${report.from.node}" would lose what is written on "${report.to.node}" from now on.`);
  }
  if (report.outcome === 'undone') out.push(chalk.bold(`Undone: ${report.note}; "${report.from.node}" is fenced (read-only).`));
  else {
    if (report.note) out.push(`Note: ${report.note}.`);
    out.push(chalk.bold(`Switchover complete: "${report.to.node}" takes writes; "${report.from.node}" is fenced (read-only).`));
    out.push(`Move the application to "${report.to.node}" now (at its first SQLSTATE 25006 it may already have).`);
  }
  const stale = report.materializedViews?.notRefreshed ?? [];
  if (stale.length) out.push(chalk.yellow(`Materialized views NOT refreshed on "${report.to.node}" (they hold old or no rows): ${stale.map((m) => m.view).join(', ')}. Run REFRESH MATERIALIZED VIEW there.`));
  if (report.writeUnavailableMs !== null) out.push(`Writes unavailable: ${report.writeUnavailableMs} ms (from the first fence to the hand-over).`);
  return out.join('\n');
}

export function switchoverToJson(report: SwitchoverReport, error?: { code: string; message: string; hint: string }): unknown {
  return snakeCase({
    formatVersion: 1,
    queue: report.queue,
    direction: report.direction,
    from: report.from,
    to: report.to,
    outcome: error ? 'failed' : report.outcome,
    note: report.note,
    steps: report.steps,
    endedSessions: report.endedSessions.map((s) => ({ ...s, transactionStart: s.transactionStart?.toISOString() ?? null })),
    drainTick: report.drainTick,
    drainedBy: report.drainedBy,
    sequences: report.sequences,
    tables: report.tables,
    reverse: report.reverse,
    materializedViews: report.materializedViews,
    writeUnavailableMs: report.writeUnavailableMs,
    // The fields by name: an Error's message is not an enumerable property.
    ...(error ? { error: { code: error.code, message: error.message, hint: error.hint } } : {}),
  });
}

/** Object keys in snake_case, as in every other JSON pgconvey prints. */
function snakeCase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCase);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeCase(v)]));
}
