/**
 * Daemons and engine upgrades: a ticker and a worker running on this
 * pgconvey's engine stop with `engine_changed` (logged with its code) when
 * another content is installed under them, instead of going on against other
 * SQL; an upgrade waits for the step in progress (the install lock they hold
 * shared around each step). A worker started on an older engine waits in
 * `run` mode (engine_not_upgraded) and starts once it is upgraded.
 */
import { describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/index.js';
import { EngineMismatchError, createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const probe = (answer: string) => `\nCREATE OR REPLACE FUNCTION pgconvey.engine_probe() RETURNS text LANGUAGE sql AS $$ SELECT '${answer}'::text $$;\n`;
const otherContent = { ...engine.ENGINE_SOURCES, functions: engine.ENGINE_SOURCES.functions + probe('other') };

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('daemons stop when the engine under them changes', () => {
  it('ticker and worker stop with engine_changed; an older engine is waited for in run mode', async () => {
    const pdb = await freshDatabase(sourceServer(), 'guard_prov');
    const sdb = await freshDatabase(targetServer(), 'guard_sub');
    const provider = await pdb.connect();
    const subscriber = await sdb.connect();
    try {
      for (const c of [provider, subscriber]) {
        await c.query('CREATE TABLE public.t (id int PRIMARY KEY, v text)');
        await engine.installEngine(c);
        // As installed by a pgconvey that did not record its content: older than this one.
        await c.query('UPDATE pgconvey.engine SET content = NULL');
      }
      await provider.query("SELECT pgconvey.create_queue('q')");
      await provider.query("SELECT pgconvey.add_table('q', 'public', 't')");
      await engine.subscribe(provider, subscriber, 'q', 'sub');
      await engine.addSubscriberTable(subscriber, 'q', 'sub', 'public', 't', 'ok');

      const lines: string[] = [];
      const log = createLogger({ format: 'json', write: (l) => lines.push(l) });
      const stop = new AbortController();
      const events = { batches: 0 };
      const worker = runWorkerDaemon({
        provider: parseDsn(pdb.dsn),
        subscriber: parseDsn(sdb.dsn),
        queue: 'q',
        consumer: 'sub',
        log,
        signal: stop.signal,
        retryDelayMs: 50,
        waitForSetup: true,
        events: { batchApplied: () => void events.batches++ },
      });
      // An engine older than this pgconvey: the worker waits, saying why.
      await waitFor('engine_not_upgraded', () => lines.some((l) => JSON.parse(l).code === 'engine_not_upgraded'));
      for (const c of [provider, subscriber]) await engine.installEngine(c);
      const ticker = runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: stop.signal });
      await provider.query("INSERT INTO public.t VALUES (1, 'a')");
      await waitFor('the row applied', async () => (await subscriber.query('SELECT count(*)::int AS n FROM public.t')).rows[0].n === 1);

      // Another pgconvey installs other content on the provider: both daemons stop, coded.
      expect(await engine.installEngine(provider, { sources: otherContent })).toMatchObject({ action: 'upgraded' });
      const [w, t] = await Promise.all([worker.catch((e: unknown) => e), ticker.catch((e: unknown) => e)]);
      for (const err of [w, t]) {
        expect(err).toBeInstanceOf(EngineMismatchError);
        expect(err).toMatchObject({ code: 'engine_changed', message: expect.stringContaining(`database "${pdb.name}"`) });
      }
      const stopped = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'error' && l.code === 'engine_changed');
      expect(stopped.map((l) => l.component).sort()).toEqual(['pgconvey.ticker', 'pgconvey.worker']);
      expect(stopped[0].hint).toContain('started again with the pgconvey that installed the engine');
      stop.abort();
    } finally {
      await provider.end();
      await subscriber.end();
    }
  }, 120_000);

  it('an upgrade waits for the step in progress: the install lock is held shared by it', async () => {
    const db = await freshDatabase(targetServer(), 'guard_lock');
    const daemon = await db.connect();
    const admin = await db.connect();
    try {
      await engine.installEngine(admin);
      const { withEngine } = await import('../../src/daemons/engine-guard.js');
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const step = withEngine([[daemon, db.name]], () => held);
      await waitFor('the shared lock', async () => (await admin.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND mode = 'ShareLock' AND granted")).rows[0].n === 1);
      let upgraded = false;
      const upgrade = engine.installEngine(admin, { sources: otherContent }).then((r) => ((upgraded = true), r));
      await waitFor('the install to wait', async () => (await daemon.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND mode = 'ExclusiveLock' AND NOT granted")).rows[0].n === 1);
      expect(upgraded).toBe(false);
      release();
      await step;
      expect(await upgrade).toMatchObject({ action: 'upgraded' });
      // The next step sees the other engine and refuses to run.
      await expect(withEngine([[daemon, db.name]], async () => 'ran')).rejects.toMatchObject({ code: 'engine_changed' });
    } finally {
      await daemon.end();
      await admin.end();
    }
  }, 60_000);
  // The daemons' one-round-trip guard (engine/engine-lock.ts) reads the engine in a statement after its
  // lock: an upgrade that held the lock while the step waited for it is seen — in a session whose default
  // isolation is REPEATABLE READ ('idle' begins its own READ COMMITTED transaction), and inside an open READ
  // COMMITTED transaction ('read-committed', the worker's provider during a read-ahead).
  for (const form of ['idle', 'read-committed'] as const) {
    it(`the one-round-trip guard (${form}) sees an upgrade that committed while it waited for the lock`, async () => {
      const db = await freshDatabase(targetServer(), `guard_${form.replace('-', '_')}`);
      const [holder, admin, daemon] = [await db.connect(), await db.connect(), await db.connect()];
      const locks = async (mode: string, granted: boolean) =>
        (await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND mode = $1 AND granted = $2", [mode, granted])).rows[0].n as number;
      try {
        await engine.installEngine(admin);
        const { withEngine } = await import('../../src/daemons/engine-guard.js');
        if (form === 'idle') await daemon.query("SET default_transaction_isolation = 'repeatable read'");
        else await daemon.query('BEGIN ISOLATION LEVEL READ COMMITTED; SELECT 1');
        // A step in progress holds the lock; the upgrade waits for it; the next step waits behind the upgrade.
        await holder.query('SELECT pg_advisory_lock_shared($1)', [engine.INSTALL_LOCK_KEY]);
        const upgrade = engine.installEngine(admin, { sources: otherContent });
        await waitFor('the install to wait', async () => (await locks('ExclusiveLock', false)) === 1);
        const step = withEngine([[daemon, db.name, form]], async () => 'ran');
        step.catch(() => undefined);
        await waitFor('the step to wait behind it', async () => (await locks('ShareLock', false)) === 1);
        await holder.query('SELECT pg_advisory_unlock_shared($1)', [engine.INSTALL_LOCK_KEY]);
        expect(await upgrade).toMatchObject({ action: 'upgraded' });
        await expect(step).rejects.toMatchObject({ code: 'engine_changed' });
      } finally {
        for (const c of [holder, admin, daemon]) await c.end();
      }
    }, 60_000);
  }

  // The apply worker's guard (stepGuard): the lock for the transaction and the engine check at the head of
  // the step's own message — the subscriber's batch opening (BEGIN ISOLATION LEVEL READ COMMITTED, in a
  // session whose default is REPEATABLE READ) and the provider's poll (an implicit transaction of a READ
  // COMMITTED session). A message that waited behind an upgrade fails before its work; explain() says why.
  for (const form of ['opening', 'poll'] as const) {
    it(`the worker's guard in the ${form}'s message holds the lock for its transaction and sees an upgrade that committed while it waited`, async () => {
      const db = await freshDatabase(targetServer(), `guard_${form}`);
      const [holder, admin, daemon] = [await db.connect(), await db.connect(), await db.connect()];
      const locks = async (mode: string, granted: boolean) =>
        (await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND mode = $1 AND granted = $2", [mode, granted])).rows[0].n as number;
      try {
        await engine.installEngine(admin);
        await admin.query('CREATE TABLE public.work (n int)');
        const { stepGuard } = await import('../../src/daemons/engine-guard.js');
        const guard = stepGuard(daemon, db.name, form === 'opening' ? 'idle' : 'read-committed');
        await daemon.query(form === 'opening' ? "SET default_transaction_isolation = 'repeatable read'" : "SET default_transaction_isolation = 'read committed'");
        const message = form === 'opening' ? `BEGIN ISOLATION LEVEL READ COMMITTED; ${guard.xactSql}; INSERT INTO public.work VALUES (1)` : `${guard.xactSql}; INSERT INTO public.work VALUES (1)`;
        const end = form === 'opening' ? 'COMMIT' : undefined;

        // This pgconvey's engine: the work runs, and the lock is held until the transaction ends (an upgrade waits).
        if (form === 'opening') {
          await daemon.query(message);
          expect(await locks('ShareLock', true)).toBe(1);
          const upgrade = engine.installEngine(admin, { sources: otherContent });
          await waitFor('the install to wait', async () => (await locks('ExclusiveLock', false)) === 1);
          await daemon.query(end!);
          expect(await upgrade).toMatchObject({ action: 'upgraded' });
          await engine.installEngine(admin); // back to this pgconvey's
        } else {
          await daemon.query(message);
        }
        expect(await locks('ShareLock', true)).toBe(0);
        expect((await admin.query('SELECT count(*)::int AS n FROM public.work')).rows[0].n).toBe(1);
        expect(await guard.explain()).toBeNull();

        // A step in progress holds the lock; the upgrade waits for it; the message waits behind the upgrade,
        // then fails before its work, and explain() names the change.
        await holder.query('SELECT pg_advisory_lock_shared($1)', [engine.INSTALL_LOCK_KEY]);
        const upgrade = engine.installEngine(admin, { sources: otherContent });
        await waitFor('the install to wait', async () => (await locks('ExclusiveLock', false)) === 1);
        const step = daemon.query(message);
        step.catch(() => undefined);
        await waitFor('the message to wait behind it', async () => (await locks('ShareLock', false)) === 1);
        await holder.query('SELECT pg_advisory_unlock_shared($1)', [engine.INSTALL_LOCK_KEY]);
        expect(await upgrade).toMatchObject({ action: 'upgraded' });
        await expect(step).rejects.toMatchObject({ code: '22P02' });
        if (form === 'opening') await daemon.query('ROLLBACK');
        expect((await admin.query('SELECT count(*)::int AS n FROM public.work')).rows[0].n).toBe(1);
        expect(await guard.explain()).toMatchObject({ code: 'engine_changed', message: expect.stringContaining(`database "${db.name}"`) });
        expect(await locks('ShareLock', true)).toBe(0);
      } finally {
        for (const c of [holder, admin, daemon]) await c.end();
      }
    }, 60_000);
  }
});

