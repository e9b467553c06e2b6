/**
 * compare's sessions on a pair: the writer's session that holds a table's
 * SHARE lock (its lock_timeout short, its idle-in-transaction guard set),
 * one work session per side under EXACT_SESSION_SQL (a value's text does not
 * depend on the server's or the role's settings) with no timeout cutting a
 * long count short, and — when neither side is the writer (two nodes under
 * the root) — one more writer session that forces the ticks.
 */
import type pg from 'pg';
import { connect, SESSION_TIMEOUTS } from '../../db/index.js';
import { EXACT_SESSION_SQL } from '../../engine/index.js';
import type { Settings } from './options.js';
import type { PairPlan } from './resolve.js';

export interface Connections {
  /** The writer's session that holds a table's SHARE lock while both snapshots are taken. */
  lock: pg.Client;
  /** A writer session outside the lock's transaction that forces ticks: a side's work session when that side is the writer. */
  ticker: pg.Client;
  provider: pg.Client;
  subscriber: pg.Client;
}

/**
 * compare's sessions must not be cut short by the server's, database's or
 * role's defaults (the one list of them: db/session-settings.ts): counting a large table takes as long as it takes. Set only
 * where the server knows the setting (idle_session_timeout from 14,
 * transaction_timeout from 17).
 */
const LONG_SESSION: ReadonlyArray<readonly [string, string]> = SESSION_TIMEOUTS.map((t) => [t.name, '0'] as const);

/**
 * The lock session's transaction is short by construction (maxPauseMs); should
 * compare itself stall while holding the lock, the server ends the session
 * after this long, so the writers go on.
 */
const LOCK_SESSION_GUARD_MS = 5_000;

/** Sets the settings the server knows, for the session. */
async function pinSettings(client: pg.Client, settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
  await client.query(
    `SELECT pg_catalog.set_config(v.name, v.value, false)
       FROM (SELECT pg_catalog.unnest($1::text[]) AS name, pg_catalog.unnest($2::text[]) AS value) v
      WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = v.name)`,
    [settings.map(([n]) => n), settings.map(([, v]) => v)],
  );
}

/** Opens and sets up the pair's sessions; each opened client joins `opened` (the caller ends them). */
export async function openConnections(plan: PairPlan, opts: Settings, opened: pg.Client[]): Promise<Connections> {
  const open = async (db: PairPlan['providerDb']) => {
    const client = await connect(db.connection, 'compare');
    opened.push(client);
    return client;
  };
  const lock = await open(plan.writerDb);
  const provider = await open(plan.providerDb);
  const subscriber = await open(plan.subscriberDb);
  const ticker = plan.writerSide === 'provider' ? provider : plan.writerSide === 'subscriber' ? subscriber : await open(plan.writerDb);
  const conns: Connections = { lock, ticker, provider, subscriber };
  await pinSettings(conns.lock, [...LONG_SESSION.filter(([n]) => n !== 'lock_timeout' && n !== 'idle_in_transaction_session_timeout'), ['lock_timeout', `${opts.lockTimeoutMs}ms`], ['idle_in_transaction_session_timeout', `${LOCK_SESSION_GUARD_MS}ms`]]);
  for (const c of [conns.provider, conns.subscriber]) {
    await c.query(EXACT_SESSION_SQL);
    await pinSettings(c, LONG_SESSION);
  }
  return conns;
}
