/**
 * The whole upgrade with no superuser on either side (issue 12, finding 6):
 * a managed-service emulation (test/harness/managed.ts — an rds_superuser-like
 * admin, application roles owning the tables, SCRAM passwords from the
 * environment, production timeouts) on PG 12 → 17 and PG 16 → 17 (16 on a
 * server of this file's own). `plan` first names exactly the grants that are
 * missing (and changes nothing); once they are given as docs/security.md
 * says: validate, plan (no errors), apply, plan again (no changes), run with
 * a writer on the application's login, compare, switchover --reverse
 * (refused up front from PG 12 with nothing fenced, the forward switchover
 * still working; done from PG 16, a switch back refused while the admin's
 * membership is revoked on old, then done), and every table equal row by
 * row by this file's own SQL.
 */
import pg from 'pg';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { columnsOf, diffRows, tableRows } from '../harness/exact.js';
import { dropManaged, managedDatabase, type ManagedDatabase } from '../harness/managed.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { sourceServer, targetServer, type ServerInfo } from '../harness/servers.js';

const SCHEMA = `
  CREATE TABLE public.accounts (id bigserial PRIMARY KEY, name text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0);
  CREATE TABLE public.orders (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES public.accounts, note text NOT NULL);
  GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts, public.orders TO {writer};
  GRANT USAGE ON SEQUENCE public.accounts_id_seq, public.orders_id_seq TO {writer};`;
const SEED = `
  INSERT INTO public.accounts (name, balance) SELECT 'seed ' || g, g FROM generate_series(1, 300) g;
  INSERT INTO public.orders (account_id, note) SELECT 1 + g % 300, 'seed order ' || g FROM generate_series(1, 1000) g;`;
const TABLES = ['accounts', 'orders'];

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** The grants docs/security.md lists for a managed service, given by the admin itself (a CREATEROLE role manages the roles it made). */
function documentedGrants(side: ManagedDatabase, schemaCopy: boolean): string {
  // SET: schema copy gives the tables it makes to their owner (ALTER TABLE … OWNER TO).
  const membership = side.major >= 16 ? (schemaCopy ? ' WITH INHERIT TRUE, SET TRUE' : ' WITH INHERIT TRUE') : '';
  return [
    `GRANT ${ident(side.owner)} TO ${ident(side.admin)}${membership};`,
    // Schema copy makes the tables there owned by the application's owner: from PG 15 public is not open to everyone.
    ...(schemaCopy && side.major >= 15 ? [`GRANT CREATE ON SCHEMA public TO ${ident(side.owner)};`] : []),
  ].join('\n');
}

function writeFile(old: ManagedDatabase, neu: ManagedDatabase, schemaCopy: boolean): string {
  const file = `${mkdtempSync('/tmp/pgconvey-managed-')}/shop.yaml`;
  writeFileSync(
    file,
    `version: 1
databases:
  old: "${old.dsn('PW_OLD')}"
  new: "${neu.dsn('PW_NEW')}"
${schemaCopy ? 'prepare:\n  schema: copy\n' : ''}daemons:
  worker: { retry_delay: 200ms }
queues:
  shop:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables: { include: ["public.*"] }
    sequences: { include: ["public.*"] }
`,
  );
  return file;
}

async function withClient<T>(config: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Every table equal on both sides, row by row (this file's own SQL, as the superuser). */
async function tablesEqual(a: ManagedDatabase, b: ManagedDatabase): Promise<string | null> {
  return withClient(a.superConfig(), (ca) =>
    withClient(b.superConfig(), async (cb) => {
      for (const t of TABLES) {
        const columns = await columnsOf(ca, 'public', t);
        const d = diffRows(columns.map((c) => c.name), await tableRows(ca, 'public', t, columns), await tableRows(cb, 'public', t, columns));
        if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) return `${t}: ${JSON.stringify(d)}`;
      }
      return null;
    }),
  );
}

/** Nothing fenced, no reverse queue: what a refused switchover must leave. */
async function untouched(side: ManagedDatabase): Promise<{ fences: number; readOnly: number; reverse: number }> {
  return withClient(side.superConfig(), async (c) => {
    const fences = Number((await c.query('SELECT count(*) AS n FROM pgconvey.fence')).rows[0].n);
    const readOnly = Number((await c.query("SELECT count(*) AS n FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database() AND array_to_string(s.setconfig, ',') LIKE '%default_transaction_read_only%'")).rows[0].n);
    const reverse = Number((await c.query("SELECT count(*) AS n FROM pgconvey.queue WHERE queue_name = 'shop_reverse'")).rows[0].n);
    return { fences, readOnly, reverse };
  });
}

/** The purpose of the node's fence, or null when it is not fenced. */
async function fenceOf(side: ManagedDatabase): Promise<string | null> {
  return withClient(side.superConfig(), async (c) => (await c.query<{ purpose: string }>('SELECT purpose FROM pgconvey.fence')).rows[0]?.purpose ?? null);
}

/** The application: one writer on its own login, writing to the node `target` names, moving on at a refusal. */
class Writer {
  target: 'old' | 'new' = 'old';
  commits = 0;
  errors: string[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;
  constructor(private readonly sides: Record<'old' | 'new', ManagedDatabase>) {}
  start(): void {
    this.loop = (async () => {
      let c: pg.Client | null = null;
      let on = this.target;
      let n = 0;
      while (!this.stopped) {
        try {
          if (!c || on !== this.target) {
            await c?.end().catch(() => undefined);
            on = this.target;
            c = new pg.Client(this.sides[on].writerConfig());
            c.on('error', () => undefined);
            await c.connect();
          }
          n++;
          await c.query('BEGIN');
          const account = (await c.query<{ id: string }>('INSERT INTO public.accounts (name, balance) VALUES ($1, $2) RETURNING id::text', [`w${n} on ${on}`, n])).rows[0]!.id;
          await c.query('INSERT INTO public.orders (account_id, note) VALUES ($1, $2)', [account, `order ${n}`]);
          await c.query('UPDATE public.accounts SET balance = balance + 1 WHERE id = $1', [1 + (n % 300)]);
          if (n % 5 === 0) await c.query('DELETE FROM public.orders WHERE id = (SELECT min(id) FROM public.orders)');
          await c.query('COMMIT');
          this.commits++;
        } catch (err) {
          this.errors.push(String((err as Error).message));
          await c?.end().catch(() => undefined);
          c = null;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await c?.end().catch(() => undefined);
    })();
  }
  async waitFor(more: number): Promise<void> {
    const goal = this.commits + more;
    await waitFor(`${more} more commits of the writer`, async () => this.commits >= goal, 60_000);
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

const cli = (args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000) => runCli(args, { env, timeoutMs });

/**
 * `schemaCopy`: the new node gets its tables from `prepare.schema: copy`
 * (needs a pg_dump as new as the old server: this machine has 15), else
 * from the application's own migrations, as its owner.
 */
function managedFlow(label: string, servers: () => { source: ServerInfo; target: ServerInfo }, reverseWorks: boolean, schemaCopy: boolean): void {
  describe(`no superuser anywhere: ${label}`, () => {
    let old: ManagedDatabase;
    let neu: ManagedDatabase;
    let file: string;
    let env: NodeJS.ProcessEnv;
    let run: CliProcess | undefined;
    let writer: Writer | undefined;

    beforeAll(async () => {
      const { source, target } = servers();
      old = await managedDatabase(source, { databaseOwner: 'owner', schema: SCHEMA + SEED });
      neu = await managedDatabase(target, { databaseOwner: 'admin', roles: { owner: old.owner, writer: old.writer }, ...(schemaCopy ? {} : { schema: SCHEMA }) });
      file = writeFile(old, neu, schemaCopy);
      env = { PW_OLD: old.password, PW_NEW: neu.password };
    }, 120_000);

    afterAll(async () => {
      await writer?.stop();
      if (run && run.child.exitCode === null) console.log(`[cli-managed] last lines of pgconvey run:\n${run.lines.slice(-30).join('\n')}`);
      await run?.kill('SIGKILL');
    });

    it('plan names exactly the grants that are missing, and changes nothing', { timeout: 120_000 }, async () => {
      const validated = await cli(['validate', file], env);
      expect(validated.code, validated.stdout).toBe(0);
      const r = await cli(['plan', file, '--json'], env);
      expect(r.code, r.stdout).toBe(1);
      const checks = JSON.parse(r.stdout).checks as Array<{ severity: string; code: string; message: string; hint: string }>;
      const errors = checks.filter((c) => c.severity === 'error');
      const provider = errors.find((c) => c.code === 'provider_cannot_capture');
      expect(provider, JSON.stringify(checks, null, 2)).toBeDefined();
      expect(provider!.hint).toContain(`GRANT ${old.owner} TO ${old.admin}${old.major >= 16 ? ' WITH INHERIT TRUE' : ''};`);
      if (schemaCopy) {
        const membership = errors.find((c) => c.code === 'schema_copy_cannot_set_owner');
        expect(membership, JSON.stringify(checks, null, 2)).toBeDefined();
        expect(membership!.hint).toContain(`GRANT ${old.owner} TO ${neu.admin} WITH INHERIT TRUE, SET TRUE;`);
        const schema = errors.find((c) => c.code === 'schema_copy_owner_cannot_create');
        expect(schema, JSON.stringify(checks, null, 2)).toBeDefined();
        expect(schema!.hint).toContain(`GRANT CREATE ON SCHEMA public TO ${old.owner};`);
      }
      // The old database belongs to the application's owner: installing the engine and fencing need its rights too.
      expect(errors.find((c) => c.code === 'cannot_install_engine')?.hint).toBe(`GRANT CREATE ON DATABASE ${old.database} TO ${old.admin};`);
      expect(errors.find((c) => c.code === 'cannot_fence_database')?.hint).toContain(`GRANT ${old.owner} TO ${old.admin}`);
      // The tables there belong to the owner: the admin writes them, and lifts their fence, with its rights.
      for (const code of ['subscriber_cannot_write', 'subscriber_cannot_unfence']) expect(errors.find((c) => c.code === code)?.hint).toContain(`GRANT ${old.owner} TO ${neu.admin} WITH INHERIT TRUE;`);
      // Nothing else is an error: the timeouts, the SCRAM logins and the rest are fine.
      expect(errors.map((c) => c.code).sort(), JSON.stringify(errors, null, 2)).toEqual([
        'cannot_fence_database',
        'cannot_install_engine',
        'provider_cannot_capture',
        // (and the plan's dry run of the schema copy cannot dump the provider's tables it may not lock yet)
        ...(schemaCopy ? ['schema_copy_cannot_set_owner', 'schema_copy_dump_failed', 'schema_copy_owner_cannot_create'] : []),
        'subscriber_cannot_unfence',
        'subscriber_cannot_write',
      ]);
      // The way back: warnings, each naming its grant.
      const reverse = checks.filter((c) => c.code.startsWith('reverse_'));
      expect(reverse.every((c) => c.severity === 'warning')).toBe(true);
      expect(reverse.map((c) => c.code).sort()).toEqual([
        'reverse_cannot_capture',
        ...(reverseWorks ? [] : ['reverse_cannot_set_replication_role']),
        'reverse_cannot_unfence',
        'reverse_cannot_write',
      ].sort());
      const applied = await cli(['apply', file, '--auto-approve'], env);
      expect(applied.code).toBe(1);
      expect(await withClient(old.superConfig(), async (c) => (await c.query("SELECT to_regnamespace('pgconvey') IS NULL AS none")).rows[0].none)).toBe(true);
    });

    it('with the documented grants: apply, run under a writer, compare, switchover, and equal row by row', { timeout: 400_000 }, async () => {
      await old.asAdmin(documentedGrants(old, false));
      await neu.asAdmin(documentedGrants(neu, schemaCopy));

      const planned = await cli(['plan', file, '--json'], env);
      expect(planned.code, planned.stdout).toBe(0);
      const checks = JSON.parse(planned.stdout).checks as Array<{ severity: string; code: string; hint: string }>;
      expect(checks.filter((c) => c.severity === 'error'), JSON.stringify(checks, null, 2)).toEqual([]);
      const reverseWarnings = checks.filter((c) => c.code.startsWith('reverse_'));
      if (reverseWorks) expect(reverseWarnings, JSON.stringify(checks, null, 2)).toEqual([]);
      else expect(reverseWarnings.map((c) => c.code)).toEqual(['reverse_cannot_set_replication_role']);

      const applied = await cli(['apply', file, '--auto-approve'], env);
      expect(applied.code, applied.stdout).toBe(0);
      const again = await cli(['plan', file, '--detailed-exitcode'], env);
      expect(again.code, again.stdout).toBe(0);
      // The admin (CREATEROLE, no superuser) made the database's capture role, which owns every capture function.
      await old.asSuper(`DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ '^capture_[0-9]+$')
           OR EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ '^capture_(truncate_)?[0-9]+$'
                        AND pg_catalog.pg_get_userbyid(p.proowner) <> pgconvey.capture_role_name()) THEN
          RAISE EXCEPTION 'the capture functions are not all owned by the capture role';
        END IF; END $$`);

      writer = new Writer({ old, new: neu });
      writer.start();
      run = startCli(['run', file, '--log-format', 'json'], env);
      const allOk = async () => {
        const s = JSON.parse((await cli(['status', file, '--json'], env)).stdout);
        return s.queues[0].subscribers[0].tables.every((t: { state: string }) => t.state === 'ok');
      };
      await waitFor('every table copied and merged', allOk, 120_000, 250);
      await writer.waitFor(50);

      const compared = await cli(['compare', file], env);
      expect(compared.code, compared.stdout).toBe(0); // at one queue position, while the writer writes

      if (!reverseWorks) {
        const refused = await cli(['switchover', file, '--to', 'new_leaf', '--reverse', '--auto-approve', '--json'], env);
        expect(refused.code, refused.stdout).toBe(1);
        const error = JSON.parse(refused.stdout).error;
        expect(error.code).toBe('switchover_reverse_not_permitted');
        expect(error.message).toContain('session_replication_role');
        expect(error.hint).toMatch(/PostgreSQL 15|superuser/);
        expect(await untouched(old)).toEqual({ fences: 0, readOnly: 0, reverse: 0 });
        expect(await untouched(neu)).toEqual({ fences: 0, readOnly: 0, reverse: 0 });
        await writer.waitFor(20); // the application never stopped
      }

      const sw = await cli(['switchover', file, '--to', 'new_leaf', ...(reverseWorks ? ['--reverse'] : []), '--auto-approve', '--timeout', '60s'], env, 180_000);
      expect(sw.code, sw.stdout).toBe(0);
      expect(sw.stdout).toMatch(/Writes unavailable: \d+ ms/);
      if (!reverseWorks) expect(sw.stdout).not.toContain('loses nothing');
      // Handed over: the old node is fenced and the writer still points at it, so nothing changes on either side.
      expect(await tablesEqual(old, neu)).toBeNull();
      writer.target = 'new';
      await writer.waitFor(30);

      if (reverseWorks) {
        // The reverse replication (run found it) brings the new node's writes to the old one.
        await writer.stop();
        await waitFor('the new node\'s writes to reach the old one', async () => (await tablesEqual(neu, old)) === null, 60_000, 250);
        writer = new Writer({ old, new: neu });
        writer.target = 'new';
        writer.start();
        await writer.waitFor(20);
        // Without the owner's rights on old the switch back could not lift its fence: refused before anything changes.
        await old.asSuper(`REVOKE ${ident(old.owner)} FROM ${ident(old.admin)} GRANTED BY ${ident(old.admin)}`);
        const refused = await cli(['switchover', file, '--to', 'old_root', '--auto-approve', '--json'], env);
        expect(refused.code, refused.stdout).toBe(1);
        expect(JSON.parse(refused.stdout).error).toMatchObject({ code: 'switchover_reverse_not_permitted', message: expect.stringContaining('reverse_cannot_unfence') });
        expect(await fenceOf(old)).toBe('standby');
        expect(await fenceOf(neu)).toBeNull();
        await writer.waitFor(10); // the application on the new node never stopped
        await old.asAdmin(documentedGrants(old, false));
        const back = await cli(['switchover', file, '--to', 'old_root', '--auto-approve', '--timeout', '60s'], env, 180_000);
        expect(back.code, back.stdout).toBe(0);
        expect(await tablesEqual(old, neu)).toBeNull();
        writer.target = 'old';
        await writer.waitFor(30);
        await writer.stop();
        // Forward replication goes on after the switch back.
        await waitFor('the old node\'s writes to reach the new one again', async () => (await tablesEqual(old, neu)) === null, 60_000, 250);
      }
      await writer.stop();
      expect(writer.commits).toBeGreaterThan(50);
      await run.kill('SIGTERM');
      const final = await cli(['plan', file, '--detailed-exitcode'], env);
      expect([0, 2]).toContain(final.code);
    });
  });
}

let sixteen: RunningServer | undefined;
const sixteenInfo = (): ServerInfo => ({ major: 16, version: sixteen!.version, host: sixteen!.host, port: sixteen!.port, user: sixteen!.user });

beforeAll(async () => {
  sixteen = await startServer({ major: 16 });
}, 120_000);

afterAll(async () => {
  await dropManaged();
  await sixteen?.stop();
});

managedFlow(`PG 12 → 17 (schema copy; the way back is refused up front)`, () => ({ source: sourceServer(), target: targetServer() }), false, true);
managedFlow('PG 16 → 17 (tables made by the application; everything, the way back included)', () => ({ source: sixteenInfo(), target: targetServer() }), true, false);
