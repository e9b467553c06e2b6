/**
 * DDL in queue order (`pgconvey execute`), the provider's and the
 * operator's side: runs a script on a queue's root in ONE transaction with
 * its record (name + checksum) and the queue event that carries it
 * (pgconvey.execute_script, functions.sql), marks a script applied on a
 * subscriber by hand, and reads what was executed and applied. The worker's
 * side (running the script at its position in a batch) is ddl-apply.ts.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { PgconveyError } from '../kernel/index.js';

/** The table id of script events (no captured table has it: ids start at 1). */
export const SCRIPT_EVENT_TABLE = 0;
/** The op of script events. */
export const SCRIPT_EVENT_OP = 'X';

/** sha256 of a script's text, hex: what "the same script" means. */
export function scriptChecksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/** What a script event's key holds (JSON). */
export interface ScriptHeader {
  name: string;
  checksum: string;
  search_path: string;
}

/** A failure of `execute` or of a script on a subscriber, with its stable code. */
export class ScriptError extends PgconveyError {
  constructor(code: string, message: string, hint: string, options: { object?: string; cause?: unknown } = {}) {
    super(code, message, hint, options);
  }
}

/** SQLSTATEs of class PX raised by the engine's script functions → error codes (docs/errors.md). */
const SCRIPT_SQLSTATES: Record<string, string> = {
  PX001: 'execute_name_conflict',
  PX002: 'execute_writes_rows',
  PX003: 'execute_drops_replicated_table',
  PX004: 'execute_changes_key',
  PX005: 'execute_unknown_queue',
  PX006: 'script_name_conflict_on_subscriber',
};

/** A server error of the script functions as a ScriptError; other errors unchanged. */
export function scriptErrorOf(err: unknown): unknown {
  const e = err as { code?: string; message?: string; hint?: string };
  const code = e?.code ? SCRIPT_SQLSTATES[e.code] : undefined;
  if (!code) return err;
  return new ScriptError(code, e.message ?? String(err), e.hint ?? 'see docs/errors.md', { cause: err });
}

export interface ExecuteResult {
  outcome: 'applied' | 'skipped';
  checksum: string;
}

/**
 * Runs `sql` as script `name` on the queue's root, in one transaction of its
 * own on `provider` (which must not be in one). The script's own error (a
 * syntax error, a missing object) is thrown as `execute_failed` with the
 * server's message; nothing is recorded then.
 */
export async function executeScript(provider: pg.Client, queue: string, name: string, sql: string): Promise<ExecuteResult> {
  const checksum = scriptChecksum(sql);
  await provider.query('BEGIN');
  try {
    const { rows } = await provider.query<{ outcome: 'applied' | 'skipped' }>(
      "SELECT pgconvey.execute_script($1, $2, $3, $4, pg_catalog.current_setting('search_path')) AS outcome",
      [queue, name, checksum, sql],
    );
    await provider.query('COMMIT');
    return { outcome: rows[0]!.outcome, checksum };
  } catch (err) {
    await provider.query('ROLLBACK').catch(() => undefined);
    const mapped = scriptErrorOf(err);
    if (mapped !== err) throw mapped;
    const e = err as { message?: string; code?: string; position?: string };
    throw new ScriptError(
      'execute_failed',
      `script "${name}" failed on the root of queue "${queue}": ${e.message ?? String(err)}${e.code ? ` (SQLSTATE ${e.code})` : ''}`,
      'nothing was changed or recorded (one transaction); fix the script and run execute again. Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM) cannot be executed: run them on each server yourself',
      { cause: err },
    );
  }
}

/**
 * Records on a subscriber that script `name` (this text) is applied there,
 * without running it: its worker then skips the script's event (logged). For
 * a script that cannot run on that subscriber whose effect the operator made
 * there by hand. Returns false when it was recorded already.
 */
export async function markScriptApplied(subscriber: pg.Client, queue: string, consumer: string, name: string, sql: string): Promise<boolean> {
  const checksum = scriptChecksum(sql);
  const r = await subscriber.query(
    `INSERT INTO pgconvey.ddl_applied (queue_name, consumer_name, script_name, checksum, end_tick) VALUES ($1, $2, $3, $4, NULL)
     ON CONFLICT (queue_name, consumer_name, script_name) DO NOTHING`,
    [queue, consumer, name, checksum],
  );
  if (r.rowCount) return true;
  const { rows } = await subscriber.query<{ checksum: string }>('SELECT checksum FROM pgconvey.ddl_applied WHERE queue_name = $1 AND consumer_name = $2 AND script_name = $3', [queue, consumer, name]);
  if (rows[0]?.checksum !== checksum) {
    throw new ScriptError('script_name_conflict_on_subscriber', `a different script named "${name}" is recorded as applied on this subscriber`, 'a script runs once per name: give a changed script a new file name');
  }
  return false;
}

export interface AppliedScript {
  name: string;
  checksum: string;
  /** The batch it was applied in; null when marked applied by hand. */
  endTick: string | null;
  appliedAt: Date;
}

/** The scripts a subscription has applied (or had marked applied), oldest first; empty on an engine before migration 0010. */
export async function appliedScripts(subscriber: pg.Client, queue: string, consumer: string): Promise<AppliedScript[]> {
  const exists = await subscriber.query<{ ok: boolean }>("SELECT pg_catalog.to_regclass('pgconvey.ddl_applied') IS NOT NULL AS ok");
  if (!exists.rows[0]!.ok) return [];
  const { rows } = await subscriber.query<{ script_name: string; checksum: string; end_tick: string | null; applied_at: Date }>(
    'SELECT script_name, checksum, end_tick::text AS end_tick, applied_at FROM pgconvey.ddl_applied WHERE queue_name = $1 AND consumer_name = $2 ORDER BY applied_at, script_name',
    [queue, consumer],
  );
  return rows.map((r) => ({ name: r.script_name, checksum: r.checksum, endTick: r.end_tick, appliedAt: r.applied_at }));
}
