/**
 * A worker that stops on an error retrying cannot fix (here: its node is not
 * subscribed) takes its copy loop with it. Before, the copy loop went on
 * polling the subscriber every 500 ms, with a connection open, for a worker
 * that was gone.
 */
import { describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/connection.js';
import { createLogger, runWorkerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('worker daemon', () => {
  it('stops its copies when it stops on a fatal error', async () => {
    const pdb = await freshDatabase(sourceServer(), 'wstop_p');
    const sdb = await freshDatabase(targetServer(), 'wstop_s');
    for (const db of [pdb, sdb]) {
      const c = await db.connect();
      await engine.installEngine(c);
      await c.end();
    }
    const prov = await pdb.connect();
    await engine.createQueue(prov, 'q');
    // A consumer with a batch to read, and no subscription on the subscriber: the worker stops (NotSubscribedError).
    await engine.registerConsumer(prov, 'q', 'nobody');
    await engine.forceTick(prov, 'q');
    await prov.end();
    const lines: string[] = [];
    const stop = new AbortController();
    const worker = runWorkerDaemon({
      provider: parseDsn(pdb.dsn),
      subscriber: parseDsn(sdb.dsn),
      queue: 'q',
      consumer: 'nobody',
      log: createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l) }),
      signal: stop.signal,
      retryDelayMs: 100,
    });
    try {
      await expect(worker).rejects.toThrow(/has no subscription/);
      const sessions = async () =>
        Number((await sdb.query("SELECT count(*) AS n FROM pg_catalog.pg_stat_activity WHERE datname = current_database() AND pid <> pg_catalog.pg_backend_pid()")).rows[0].n);
      await waitFor('the copy loop to close its connection', async () => (await sessions()) === 0, 10_000);
      expect(lines.some((l) => JSON.parse(l).msg === 'stopping: this cannot be fixed by retrying')).toBe(true);
    } finally {
      stop.abort();
    }
  });
});
