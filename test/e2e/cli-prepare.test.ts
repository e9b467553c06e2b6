/**
 * prepare.roles: copy and prepare.schema: copy on real databases (old → an
 * empty new database): roles with their attributes, memberships and password
 * hashes, and the tables (schema, keys, constraints, owned sequences, owner,
 * grants) are created from the provider; the plan converges and rows
 * replicate into the created tables.
 */
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const sfx = randomBytes(3).toString('hex');
const OWNER = `prep_owner_${sfx}`;
const READER = `prep_reader_${sfx}`;

const FILE = { queue: 'sales', tables: ['sales.*'], sequences: ['sales.*'], extra: 'prepare: { roles: copy, schema: copy }' };

/** Definitions as the catalog sees them, comparable across servers (PG 17's MAINTAIN privilege and PG 18's NOT NULL constraint rows left out). */
async function shape(db: TestDatabase): Promise<unknown> {
  const q = async (sql: string) => (await db.query(sql)).rows;
  return {
    schema: await q(`SELECT pg_get_userbyid(nspowner) AS owner, nspacl::text AS acl FROM pg_namespace WHERE nspname = 'sales'`),
    tables: await q(`SELECT c.relname, pg_get_userbyid(c.relowner) AS owner,
      array(SELECT pg_get_userbyid(a.grantee) || ':' || a.privilege_type FROM aclexplode(c.relacl) a WHERE a.privilege_type <> 'MAINTAIN' ORDER BY 1) AS acl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sales' AND c.relkind IN ('r', 'S') ORDER BY 1`),
    columns: await q(`SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'sales' ORDER BY 1, ordinal_position`),
    constraints: await q(`SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE connamespace = 'sales'::regnamespace AND contype <> 'n' ORDER BY 1, 2`),
    indexes: await q(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'sales' ORDER BY 1`),
  };
}

async function role(db: TestDatabase, name: string) {
  return (
    await db.query(
      `SELECT rolcanlogin, rolcreatedb, rolconnlimit, rolpassword, array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid) AS member_of
         FROM pg_authid a WHERE rolname = $1`,
      [name],
    )
  ).rows[0];
}

describe('prepare: copy', () => {
  it('creates missing roles and tables from the provider, then replicates into them', { timeout: 120_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'prep_p'), await freshDatabase(targetServer(), 'prep_s')];
    await p.query(`
      DO $$ BEGIN
        CREATE ROLE ${READER} NOLOGIN;
        CREATE ROLE ${OWNER} LOGIN CREATEDB CONNECTION LIMIT 7 PASSWORD 'pw-${sfx}' IN ROLE ${READER};
      END $$;
      CREATE SCHEMA sales AUTHORIZATION ${OWNER};
      GRANT USAGE ON SCHEMA sales TO ${READER};
      CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
      CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES sales.customers (id), total numeric(12,2) CHECK (total >= 0), placed date DEFAULT current_date);
      CREATE INDEX orders_customer ON sales.orders (customer_id);
      ALTER TABLE sales.customers OWNER TO ${OWNER};
      ALTER TABLE sales.orders OWNER TO ${OWNER};
      GRANT SELECT ON sales.orders TO ${READER};
      INSERT INTO sales.customers (name) SELECT 'c' || g FROM generate_series(1, 300) g;
      INSERT INTO sales.orders (customer_id, total) SELECT 1 + g % 300, g FROM generate_series(1, 2000) g;`);
    const file = writeTwoNodeFile(FILE, 'sales.yaml');
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };

    const plan = await runCli(['plan', file, '--detailed-exitcode'], { env });
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toContain(`+ create_role ${OWNER}`);
    expect(plan.stdout).toContain(`+ grant_role ${OWNER}:${READER}`);
    expect(plan.stdout).toMatch(/\+ copy_schema sales\s+table\(s\) sales\.customers, sales\.orders do not exist here; pg_dump \d+/);

    const applied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 60_000 });
    expect(applied.code, applied.stdout).toBe(0);
    // The copy runs beside the provider's actions: every progress line is whole, the copy's end among them.
    const progress = applied.stdout.split('\n').filter((l) => / … /.test(l));
    expect(progress.filter((l) => !/^ {2}[+~-] \S+ … (done \(\d+ ms\)|running)$/.test(l)), applied.stdout).toEqual([]);
    expect(progress.some((l) => /^ {2}\+ copy_schema:new_leaf:sales … done \(\d+ ms\)$/.test(l)), applied.stdout).toBe(true);
    const again = await runCli(['plan', file, '--detailed-exitcode'], { env });
    // roles: copy copies every role of the provider's server, which the test files running beside this one
    // share: a role one of them made since this apply is the only change the plan may show.
    const changes = again.stdout.split('\n').filter((l) => /^\s*[+~-] [a-z_]+\b/.test(l));
    const othersRoles = changes.every((l) => /^\s*\+ (create_role|grant_role) /.test(l) && !l.includes(OWNER) && !l.includes(READER));
    expect(again.code === 0 || (again.code === 2 && changes.length > 0 && othersRoles), again.stdout).toBe(true);

    // Roles: attributes, membership, and the very password hash (the test role is a superuser on both).
    const [ro, rn] = [await role(p, OWNER), await role(s, OWNER)];
    expect(rn).toEqual(ro);
    expect(rn.member_of).toEqual([READER]);
    expect((await role(s, READER)).rolcanlogin).toBe(false);
    // Tables: same definitions, owner and grants.
    expect(await shape(s)).toEqual(await shape(p));

    const ticker = startCli(['engine', 'ticker', '--db', p.dsn, '--queue', 'sales']);
    const worker = startCli(['engine', 'worker', '--provider', p.dsn, '--subscriber', s.dsn, '--queue', 'sales', '--consumer', 'new_leaf']);
    const [pc, sc] = [await p.connect(), await s.connect()];
    try {
      await p.query('INSERT INTO sales.orders (customer_id, total) VALUES (5, 10), (6, 11)');
      await waitFor('both tables equal row by row', async () => {
        for (const t of ['sales.customers', 'sales.orders']) {
          const d = await diffTable(pc, sc, t, ['id']);
          if (d.missing.length || d.extra.length) return false;
        }
        return true;
      }, 60_000);
      const next = await s.query<{ v: string }>("SELECT nextval('sales.orders_id_seq') AS v");
      expect(Number(next.rows[0]!.v)).toBeGreaterThan(2002);
    } finally {
      await pc.end();
      await sc.end();
      await worker.kill('SIGTERM');
      await ticker.kill('SIGTERM');
    }
  });

  it('names the pg_dump it needs when the one given is too old, before changing anything', { timeout: 60_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'prep_np'), await freshDatabase(targetServer(), 'prep_ns')];
    await p.query('CREATE SCHEMA sales; CREATE TABLE sales.t (id int PRIMARY KEY)');
    const file = writeTwoNodeFile(FILE, 'sales.yaml');
    const dir = dirname(file);
    writeFileSync(`${dir}/pg_dump`, '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n', { mode: 0o755 });
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn, PGCONVEY_PG_DUMP: `${dir}/pg_dump` };
    const r = await runCli(['apply', file, '--auto-approve'], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`error pg_dump_too_old: prepare.schema: copy needs pg_dump of PostgreSQL ${sourceServer().major} or newer to create sales.t on node "new_leaf"; found 9.6.24 at ${dir}/pg_dump`);
    expect((await s.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname IN ('pgconvey', 'sales')")).rows[0].n).toBe(0);
  });

  it('plan reports, before apply, each object the schema copy cannot create on an empty database, and apply changes nothing', { timeout: 90_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'prep_xp'), await freshDatabase(targetServer(), 'prep_xs')];
    // adminpack ships with PostgreSQL up to 16; on a newer target its files are gone. (pg_available_extensions
    // cannot be read on every embedded server: one has a control file its server does not understand.)
    const missing = await s.query("CREATE EXTENSION adminpack").then(() => false, () => true);
    if (!missing) await s.query('DROP EXTENSION adminpack');
    const onSource = await p.query('CREATE EXTENSION adminpack').then(() => true, () => false);
    await p.query(`
      CREATE SCHEMA sales;
      CREATE TABLE sales.regions (id int PRIMARY KEY);
      CREATE TABLE sales.shops (id int PRIMARY KEY, region_id int REFERENCES sales.regions (id));`);
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    // A foreign key to a table the queue leaves out.
    const tables = writeTwoNodeFile({ ...FILE, tables: ['sales.shops'] }, 'sales.yaml');
    const r = await runCli(['plan', tables], { env });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toContain('error schema_copy_needs_unselected_table: table constraint shops_region_id_fkey on sales.shops needs table sales.regions, which the queue does not replicate and node "new_leaf" does not have');
    expect(r.stdout).toContain('hint: add sales.regions to the queue\'s tables, or create it on the subscriber yourself');
    expect(r.stdout).not.toContain('No changes');
    if (missing && onSource) {
      const all = writeTwoNodeFile({ ...FILE, extra: 'prepare: { roles: copy, schema: copy, schema_objects: all }' }, 'sales.yaml');
      const plan = await runCli(['plan', all], { env });
      expect(plan.code, plan.stdout).toBe(1);
      expect(plan.stdout).toMatch(/error schema_copy_extension_unavailable: creating EXTENSION adminpack on node "new_leaf" would fail: .*\(SQLSTATE \w+\)\n {4}hint: install the extension's package/);
      const applied = await runCli(['apply', all, '--auto-approve'], { env });
      expect(applied.code).toBe(1);
    }
    // Nothing was created by the dry runs, nor by the refused apply.
    expect((await s.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname IN ('pgconvey', 'sales')")).rows[0].n).toBe(0);
  });
});
