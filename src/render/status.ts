/**
 * `pgconvey status` for people (one block per queue: the root, each
 * subscriber with its worker and lag, each table with its state and, while
 * copying, a progress bar with rows, rate and time left) and for scripts
 * (JSON with numbers in seconds, rows and events).
 */
import chalk from 'chalk';
import { describeFence, type NodeStatusBase, type PieceProcess, type RetentionStatus, type RootStatus, type StatusReport, type SubscriberStatus } from '../operations/index.js';

const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** A subscriber table's state (the engine's TableState, taken from the report's type: render does not import the engine). */
type TableState = SubscriberStatus['tables'][number]['state'];

/** Each state's colour: replicating green, waiting for its copy yellow, a copy under way cyan, held on a schema mismatch red. */
const STATE_COLOR: Record<TableState, (text: string) => string> = {
  ok: (s) => chalk.green(s),
  pending: (s) => chalk.yellow(s),
  copying: (s) => chalk.cyan(s),
  'catching-up': (s) => chalk.cyan(s),
  held: (s) => chalk.red(s),
};

export function formatSeconds(s: number | null): string {
  if (s === null) return '–';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function progressBar(fraction: number, width = 20): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

const running = (on: boolean | null, what: string, processes: readonly PieceProcess[] = []) =>
  on === null
    ? chalk.dim(`${what} ?`)
    : on
      ? chalk.green(`${what} running`)
      : processes.some((p) => p.state === 'backing-off')
        ? chalk.yellow(`${what} backing off`)
        : chalk.red(`${what} not running`);

/** One line per process running the piece or backing off to retry it. */
function processLines(processes: readonly PieceProcess[] | undefined, indent: string): string[] {
  return (processes ?? []).map((p) =>
    p.state === 'running'
      ? chalk.dim(`${indent}process ${p.process} running`)
      : chalk.yellow(`${indent}process ${p.process} backing off, retry at ${p.retryAt?.toISOString() ?? '?'}: ${p.lastError ?? ''}`),
  );
}

/** The fence of a node, on a line of its own, when it has one. */
function fenceLine(n: NodeStatusBase, indent: string): string[] {
  if (!n.fence) return [];
  const text = `${indent}${describeFence(n.fence)}`;
  return [n.fence.record?.purpose === 'standby' ? chalk.yellow(text) : chalk.red(text)];
}

function rootLine(r: RootStatus): string {
  const head = `root ${chalk.bold(r.node)} ${chalk.dim(r.display)}`;
  if (r.error) return `${head}  ${chalk.red(r.error)}`;
  const rate = r.eventsPerSecond === null ? '' : `  ${int(r.eventsPerSecond)} events/s`;
  return `${head}  ${running(r.tickerRunning, 'ticker', r.tickerProcesses)}  last tick ${r.lastTick} ${formatSeconds(r.lastTickAgeSeconds)} ago${rate}`;
}

/** Cascades: whom a provider keeps its events for, when it is a node below one of its branches. */
function retentionLine(r: RetentionStatus | null | undefined, indent: string): string[] {
  if (!r || r.through.length < 2) return [];
  return [chalk.dim(`${indent}keeps events from tick ${r.tick}${r.ageSeconds === null ? '' : ` (${formatSeconds(r.ageSeconds)} old)`} for ${r.heldBy}, through ${r.through.slice(0, -1).join(' → ')}`)];
}

function subscriberLines(s: SubscriberStatus): string[] {
  // Cascades: a node under a branch is indented under it, and a branch says so.
  const indent = '  '.repeat(Math.max(0, (s.depth ?? 1) - 1));
  // A branch switched over to is the root of its queue since (the nodes under it follow it; the old root's queue is frozen).
  const kind = s.type !== 'branch' ? '' : s.switchedOverAt ? ' (branch in the file; the root of its queue since the switchover)' : ' (branch)';
  const head = `${indent}  → ${chalk.bold(s.node)}${kind} ${chalk.dim(s.display)}`;
  if (s.error) return [`${head}  ${chalk.red(s.error)}`];
  const lag = s.lagSeconds === null ? '' : `  lag ${formatSeconds(s.lagSeconds)}${s.pendingEvents === null ? '' : `, ${int(s.pendingEvents)} events`}`;
  const applied = s.appliedAgeSeconds === null ? '' : `  applied ${formatSeconds(s.appliedAgeSeconds)} ago`;
  const writable = s.switchedOverAt ? chalk.green(`  takes writes since ${s.switchedOverAt.toISOString()}`) : '';
  const out = [`${head}  ${running(s.workerRunning, 'worker', s.workerProcesses)}${lag}${applied}${writable}`, ...processLines(s.workerProcesses, '      '), ...fenceLine(s, '      '), ...retentionLine(s.retention, '      ')];
  if (s.lastError) out.push(chalk.red(`      last error ${formatSeconds(s.lastError.ageSeconds)} ago: ${s.lastError.message}`));
  const width = Math.max(0, ...s.tables.map((t) => `${t.schema}.${t.table}`.length));
  for (const t of s.tables) {
    const name = `${t.schema}.${t.table}`.padEnd(width);
    const state = STATE_COLOR[t.state](t.state);
    let detail = '';
    if (t.state === 'copying') {
      const f = t.rowsExpected ? t.rowsCopied / t.rowsExpected : 0;
      detail = `  ${progressBar(f)} ${t.rowsExpected ? `${Math.min(99, Math.floor(f * 100))}%` : ''}  ${int(t.rowsCopied)}${t.rowsExpected ? ` / ${int(t.rowsExpected)}` : ''} rows`;
      if (t.rowsPerSecond) detail += `  ${int(t.rowsPerSecond)} rows/s`;
      if (t.etaSeconds !== null) detail += `  ETA ${formatSeconds(t.etaSeconds)}`;
    } else if (t.state === 'catching-up' || (t.state === 'ok' && t.rowsCopied > 0)) {
      detail = chalk.dim(`  copied ${int(t.rowsCopied)} rows${t.rowsPerSecond ? ` at ${int(t.rowsPerSecond)} rows/s` : ''}`);
    }
    out.push(`      ${name}  ${state}${detail}${t.lastError ? `  ${chalk.red(t.lastError)}` : ''}`);
    if (t.waitingFor) out.push(chalk.dim(`      ${' '.repeat(width)}  waits for ${t.waitingFor}`));
  }
  return out;
}

export function renderStatusHuman(report: StatusReport): string {
  const out: string[] = [];
  for (const q of report.queues) {
    out.push(`${chalk.bold(`queue ${q.queue}`)}${q.reverse ? chalk.dim('  (reverse replication, set up by switchover --reverse)') : ''}`, `  ${rootLine(q.root)}`, ...processLines(q.root.tickerProcesses, '      '), ...fenceLine(q.root, '      '), ...retentionLine(q.root.retention, '      '));
    for (const s of q.subscribers) out.push(...subscriberLines(s).map((l) => `  ${l}`));
    out.push('');
  }
  if (report.problems.length) {
    out.push(chalk.red.bold(`${report.problems.length} problem(s):`));
    for (const p of report.problems) out.push(chalk.red(`  - ${p}`));
  } else {
    out.push(chalk.green('All replication is running.'));
  }
  return out.join('\n');
}

function processesJson(processes: readonly PieceProcess[] | undefined): unknown[] {
  return (processes ?? []).map((p) => ({ process: p.process, application: p.application, state: p.state, last_error: p.lastError, last_error_at: p.lastErrorAt?.toISOString() ?? null, retry_at: p.retryAt?.toISOString() ?? null }));
}

function fenceJson(n: NodeStatusBase): Record<string, unknown> | null {
  const f = n.fence;
  if (!f) return null;
  const r = f.record;
  return {
    read_only_default: f.readOnlyDefault,
    tables: f.tables,
    fenced_tables: f.fencedTables,
    purpose: r?.purpose ?? null,
    switchover_to: r?.switchoverTo ?? null,
    fenced_at: r?.fencedAt.toISOString() ?? null,
    fenced_by: r?.fencedBy ?? null,
  };
}

function retentionJson(r: RetentionStatus | null | undefined): Record<string, unknown> | null {
  return r ? { tick: r.tick, age_seconds: r.ageSeconds, held_by: r.heldBy, through: r.through } : null;
}

export function statusToJson(report: StatusReport): Record<string, unknown> {
  return {
    file: report.file,
    taken_at: report.takenAt.toISOString(),
    healthy: report.problems.length === 0,
    problems: report.problems,
    queues: report.queues.map((q) => ({
      queue: q.queue,
      reverse: q.reverse,
      root: {
        node: q.root.node,
        database: q.root.database,
        display: q.root.display,
        error: q.root.error,
        ticker_running: q.root.tickerRunning,
        last_tick: q.root.lastTick,
        last_tick_age_seconds: q.root.lastTickAgeSeconds,
        events_since_tick: q.root.eventsSinceTick,
        events_per_second: q.root.eventsPerSecond,
        fence: fenceJson(q.root),
        ticker_processes: processesJson(q.root.tickerProcesses),
        capture_triggers: (q.root.captureTriggers ?? []).map((t) => ({ table: t.table, trigger: t.trigger, name: t.name, state: t.state })),
        retention: retentionJson(q.root.retention),
      },
      subscribers: q.subscribers.map((s) => ({
        node: s.node,
        type: s.type ?? 'leaf',
        provider: s.provider ?? q.root.node,
        depth: s.depth ?? 1,
        database: s.database,
        display: s.display,
        error: s.error,
        subscribed: s.subscribed,
        worker_running: s.workerRunning,
        lag_seconds: s.lagSeconds,
        pending_events: s.pendingEvents,
        completed_tick: s.completedTick,
        applied_age_seconds: s.appliedAgeSeconds,
        last_error: s.lastError && { message: s.lastError.message, age_seconds: s.lastError.ageSeconds },
        switched_over_at: s.switchedOverAt?.toISOString() ?? null,
        fence: fenceJson(s),
        worker_processes: processesJson(s.workerProcesses),
        ...(s.type === 'branch' ? { retention: retentionJson(s.retention) } : {}),
        tables: s.tables.map((t) => ({
          table: `${t.schema}.${t.table}`,
          state: t.state,
          since: t.since,
          rows_copied: t.rowsCopied,
          bytes_copied: t.bytesCopied,
          rows_expected: t.rowsExpected,
          rows_per_second: t.rowsPerSecond,
          eta_seconds: t.etaSeconds,
          last_error: t.lastError,
          copy_failures: t.copyFailures ?? 0,
          waiting_for: t.waitingFor ?? null,
        })),
      })),
    })),
  };
}
