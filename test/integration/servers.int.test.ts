import { describe, expect, it } from 'vitest';
import { freshDatabase } from '../harness/databases.js';
import { parseMajors, servers, sourceServer, targetServer } from '../harness/servers.js';

describe('test servers', () => {
  it('runs one server per major in PGTEST_MAJORS, answering with that major', async () => {
    const expected = parseMajors(process.env.PGTEST_MAJORS);
    expect(servers().map((s) => s.major)).toEqual(expected);
    for (const server of servers()) {
      const db = await freshDatabase(server, 'smoke');
      const { rows } = await db.query<{ num: string; snap: string }>(
        "SELECT current_setting('server_version_num') AS num, txid_current_snapshot()::text AS snap",
      );
      expect(Math.floor(Number(rows[0]!.num) / 10000)).toBe(server.major);
      expect(rows[0]!.snap).toMatch(/^\d+:\d+:/);
    }
  });

  it('gives the upgrade direction: source older than target', () => {
    expect(sourceServer().major).toBeLessThan(targetServer().major);
  });

  it('gives each test file fresh, empty databases', async () => {
    const a = await freshDatabase(sourceServer());
    const b = await freshDatabase(sourceServer());
    expect(a.name).not.toBe(b.name);
    const { rows } = await a.query<{ n: string }>("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(Number(rows[0]!.n)).toBe(0);
  });
});
