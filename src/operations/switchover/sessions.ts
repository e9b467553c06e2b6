/**
 * Ending the sessions a fence must not wait for: every session on the
 * database that is neither pgconvey's nor this one and started before the
 * fence (their open transactions roll back), named in the report.
 */
import type pg from 'pg';
import { SwitchoverError } from './error.js';
import type { EndedSession } from './report.js';
import { sleep } from './run.js';

interface ActivityRow {
  pid: number;
  usename: string | null;
  application_name: string;
  client_addr: string | null;
  state: string | null;
  xact_start: Date | null;
}

export function endedSession(r: ActivityRow): EndedSession {
  return { pid: r.pid, user: r.usename, applicationName: r.application_name, clientAddress: r.client_addr, state: r.state, transactionStart: r.xact_start };
}

/** Ends every session on the client's database that is neither pgconvey's nor this one and started before now; returns them. */
export async function endSessions(client: pg.Client, timeoutMs: number): Promise<EndedSession[]> {
  const fence = (await client.query<{ at: Date }>('SELECT clock_timestamp() AS at')).rows[0]!.at;
  const ended = new Map<number, EndedSession>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<ActivityRow>(
      `SELECT pid, usename, application_name, client_addr::text AS client_addr, state, xact_start FROM pg_catalog.pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND left(coalesce(application_name, ''), 9) <> 'pgconvey:' AND backend_start <= $1`,
      [fence],
    );
    if (!rows.length) return [...ended.values()];
    if (Date.now() > deadline) {
      throw new SwitchoverError('switchover_sessions_remain', `${rows.length} session(s) did not end within ${timeoutMs} ms (pids ${rows.map((r) => r.pid).join(', ')})`, 'find out what keeps them (pg_stat_activity), then run the switchover again');
    }
    for (const r of rows) {
      if (ended.has(r.pid)) continue;
      await terminate(client, r.pid, r.usename);
      ended.set(r.pid, endedSession(r));
    }
    await sleep(10);
  }
}

export async function terminate(client: pg.Client, pid: number, user: string | null): Promise<void> {
  try {
    await client.query('SELECT pg_catalog.pg_terminate_backend($1)', [pid]);
  } catch (err) {
    if ((err as { code?: string }).code === '42501') {
      throw new SwitchoverError('switchover_cannot_end_sessions', `not allowed to end session ${pid} (user ${user ?? 'unknown'})`, 'connect as a superuser or a member of pg_signal_backend');
    }
    throw err;
  }
}
