/**
 * The engine a daemon was built for. The ticker and the apply worker check,
 * when they connect and at every step, that the engine installed in their
 * databases is the one this pgconvey installs (same migration, same content
 * version). Around each step they hold the install lock shared, so an
 * upgrade (which takes it exclusively) waits for the step in progress, and
 * the next step sees the new engine and stops that daemon with a coded
 * error — a supervisor then starts the pgconvey that installed it — instead
 * of running this code against other SQL.
 *
 * What the lock must cover: every statement this code sends that runs the
 * engine's SQL (its functions, its tables) — an upgrade replaces them. A
 * step's connection needs it from the step's first engine statement to its
 * last, not between steps. The apply worker's step (stepGuard) takes it in
 * the step's first message, for that message's transaction, with the
 * engine check in the same message: on the subscriber the batch's opening
 * (the lock ends with the batch's COMMIT or ROLLBACK), on the provider the
 * poll; only work outside those transactions (a batch read by cursor,
 * copies merging, pins, a branch's re-queue, a table held after a rollback)
 * takes the session lock as well, around it.
 */
import type pg from 'pg';
import { PgconveyError } from '../kernel/index.js';
import {
  ENGINE_CONTENT,
  ENGINE_VERSION,
  INSTALL_LOCK_KEY,
  LOCK_XACT_SHARED_SQL,
  UNLOCK_SHARED_SQL,
  engineCheckSql,
  installedEngine,
  lockSharedAndReadEngine,
  shortContent,
  type EngineLockForm,
  type InstalledEngine,
  type StepGuard,
} from '../engine/index.js';

export type EngineMismatchCode = 'engine_changed' | 'engine_not_upgraded';

export class EngineMismatchError extends PgconveyError {
  declare readonly code: EngineMismatchCode;
  constructor(code: EngineMismatchCode, message: string, hint: string) {
    super(code, message, hint);
  }
}

const what = (version: number, content: string | null) => `version ${version} (content ${shortContent(content)})`;

/** Why a daemon of this pgconvey must not run against the installed engine, or null when it may (or the engine is not installed: the daemon's own errors say so). */
export function engineMismatch(installed: InstalledEngine | null, database: string): EngineMismatchError | null {
  if (installed === null || (installed.version === ENGINE_VERSION && installed.content === ENGINE_CONTENT)) return null;
  const mine = what(ENGINE_VERSION, ENGINE_CONTENT);
  if (installed.version < ENGINE_VERSION || installed.content === null) {
    return new EngineMismatchError(
      'engine_not_upgraded',
      `the engine in database "${database}" is ${what(installed.version, installed.content)}, older than this pgconvey's (${mine})`,
      'upgrade it in place with this pgconvey: pgconvey plan FILE shows ~ upgrade_engine, pgconvey apply FILE runs it',
    );
  }
  return new EngineMismatchError(
    'engine_changed',
    `the engine in database "${database}" is ${what(installed.version, installed.content)}, not the one this pgconvey runs (${mine}); it was upgraded by another pgconvey`,
    'this piece stopped so that it is started again with the pgconvey that installed the engine (a supervisor restarting pgconvey run on exit does it); run the same pgconvey everywhere',
  );
}

/** Throws EngineMismatchError when the installed engine is not this pgconvey's. */
export async function checkEngine(client: pg.Client, database: string): Promise<void> {
  const problem = engineMismatch(await installedEngine(client), database);
  if (problem) throw problem;
}

/**
 * Runs one daemon step holding the install lock shared on every database it
 * touches, after checking their engines. An install waiting for the lock
 * holds back new steps (PostgreSQL queues them behind it), so it does not
 * starve. A connection given a lock form (engine/engine-lock.ts) takes the
 * lock and reads the engine in one round trip: 'idle' for one outside any
 * transaction, 'read-committed' for one whose session default is READ
 * COMMITTED (the worker's provider, whose read-ahead may hold a transaction
 * open); none: two round trips, any session.
 */
export async function withEngine<T>(databases: ReadonlyArray<readonly [pg.Client, string, EngineLockForm?]>, step: () => Promise<T>): Promise<T> {
  const locked: pg.Client[] = [];
  try {
    for (const [client, database, form] of databases) {
      if (form) {
        // The lock and the engine's row in one round trip (engine/engine-lock.ts).
        locked.push(client);
        const problem = engineMismatch(await lockSharedAndReadEngine(client, form), database);
        if (problem) throw problem;
        continue;
      }
      await client.query('SELECT pg_catalog.pg_advisory_lock_shared($1)', [INSTALL_LOCK_KEY]);
      locked.push(client);
      await checkEngine(client, database);
    }
    const result = await step();
    for (const client of locked.splice(0)) await client.query('SELECT pg_catalog.pg_advisory_unlock_shared($1)', [INSTALL_LOCK_KEY]);
    return result;
  } catch (err) {
    // The connections may be broken; the run loop closes them anyway, which releases the locks.
    for (const client of locked) await client.query('SELECT pg_catalog.pg_advisory_unlock_shared($1)', [INSTALL_LOCK_KEY]).catch(() => undefined);
    throw err;
  }
}

/**
 * The guard of one connection as the apply worker's step holds it
 * (engine/engine-lock.ts StepGuard): `form` is the connection's, for its
 * session lock ('idle' for the subscriber between batches, 'read-committed'
 * for the provider).
 */
export function stepGuard(client: pg.Client, database: string, form: EngineLockForm): StepGuard {
  return {
    xactSql: `${LOCK_XACT_SHARED_SQL}; ${engineCheckSql(ENGINE_VERSION, ENGINE_CONTENT)}`,
    async lockSession() {
      const problem = engineMismatch(await lockSharedAndReadEngine(client, form), database);
      if (problem) throw problem;
    },
    async unlockSession() {
      await client.query(UNLOCK_SHARED_SQL);
    },
    async explain() {
      try {
        return engineMismatch(await installedEngine(client), database);
      } catch {
        return null; // the connection (or the database) is what failed: the step's own error says so
      }
    },
  };
}
