/**
 * pgconvey as a library: the calls of docs/architecture.md's example ("Using
 * pgconvey as a library") on real databases — plan a file, save the plan,
 * read and verify it, apply it, read the status — and a failure through
 * renderError.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PgconveyError, applyPlan, collectStatus, errorToJson, loadFile, planFile, planFromSaved, readSavedPlan, renderError, writeSavedPlan } from '../../src/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FILE = 'test/fixtures/scenarios/shop.yaml';

describe('the library API', () => {
  it('plans, saves, verifies and applies a plan, and reads the status', { timeout: 120_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'lib_p'), await freshDatabase(targetServer(), 'lib_s')];
    const schema = 'CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric); CREATE TABLE public.audit (event_id bigint NOT NULL, body text);';
    await p.query(schema);
    await s.query(schema);
    const env = { ...process.env, PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    const secrets: string[] = [];

    const planned = await planFile(FILE, { env, onSecrets: (found) => secrets.push(...found) });
    expect(planned.plan.errored).toBe(false);
    expect(planned.plan.actions.map((a) => a.kind)).toContain('capture_table');

    const path = join(mkdtempSync(join(tmpdir(), 'pgconvey-lib-')), 'plan.json');
    await writeSavedPlan(path, planned);
    const saved = await readSavedPlan(path);
    expect(saved).not.toBeNull();
    const fresh = await planFromSaved(path, saved!, { env });
    const done: string[] = [];
    await applyPlan(fresh, { onDone: (a) => done.push(a.id) });
    expect(done).toEqual(planned.plan.actions.map((a) => a.id));

    // Applied: the saved plan is stale now, and says so as a PgconveyError.
    const stale = await planFromSaved(path, saved!, { env }).catch((err: unknown) => err);
    expect(stale).toBeInstanceOf(PgconveyError);
    expect((stale as PgconveyError).code).toBe('plan_stale');
    expect(renderError(stale)).toMatch(/^error plan_stale: .*\n {4}hint: /);

    const status = await collectStatus((await loadFile(FILE, { env })).state);
    expect(status.queues[0]!.queue).toBe('shop');
  });

  it('a file that does not load throws every problem at once; a database that cannot be reached, its code', async () => {
    const missing = await loadFile('no/such/file.yaml').catch((err: unknown) => err);
    expect(errorToJson(missing).error.code).toBe('file_not_found');
    const down = await planFile(FILE, { env: { ...process.env, PGCONVEY_OLD_DSN: 'host=127.0.0.1 port=1 user=x dbname=x', PGCONVEY_NEW_DSN: 'host=127.0.0.1 port=1 user=x dbname=y' } }).catch((err: unknown) => err);
    expect(renderError(down)).toMatch(/^error connection_refused: /);
  });
});
