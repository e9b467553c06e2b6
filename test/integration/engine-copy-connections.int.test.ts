/**
 * A copy that cannot open all its connections (a server down) closes those it
 * did open before failing, so a copier retrying every few seconds against a
 * downed provider does not pile up sessions on the subscriber.
 */
import { describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/index.js';
import { connect } from '../../src/db/index.js';
import * as engine from '../../src/engine/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { targetServer } from '../harness/servers.js';

describe('copy connections', () => {
  it('are all closed when one of them cannot be opened', async () => {
    const sdb = await freshDatabase(targetServer(), 'conn_s');
    const spec = parseDsn(sdb.dsn);
    const sessions = async () => (await sdb.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvey:leakcheck'")).rows[0].n as number;
    for (let i = 0; i < 3; i++) {
      await expect(engine.copyPendingTables(() => Promise.reject(new Error('provider down')), () => connect(spec, 'leakcheck'), 'q', 'c')).rejects.toThrow('provider down');
      await expect(engine.openAll([() => connect(spec, 'leakcheck'), () => connect(spec, 'leakcheck'), () => Promise.reject(new Error('down'))])).rejects.toThrow('down');
    }
    await waitFor('the opened sessions to end', async () => (await sessions()) === 0, 10_000);
  });
});
