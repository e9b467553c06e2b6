/**
 * A Pagila-like database (test/fixtures/pagila-like: enums, domains, arrays,
 * a composite and a range type, a collation, a tsvector kept by a trigger,
 * bytea, sequences used only by defaults, a partitioned payment table with
 * its key on the parent and monthly partitions, foreign keys with ON UPDATE
 * CASCADE, views, a materialized view, functions — one returning a table's
 * row type —, a schema owned by an application role, grants) moved from the
 * old server into an EMPTY new database with the CLI only (validate, plan,
 * apply, run, switchover) and `prepare: { roles: copy, schema: copy,
 * schema_objects: all }`: no DDL by hand. Checked with the test's own SQL:
 * the catalog definitions are the same, every table (and the partitioned
 * parent, and the views) is equal row by row, sequences are at or past the
 * old ones, a monthly partition added on the old server while `run` goes is
 * created and replicated by the next plan/apply, the materialized view is
 * refreshed by the switchover, and plan after every apply shows no change.
 * The partitioned payment table is selected by its parent (public.*: its
 * partitions replicate as part of it).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { twoNodeYaml } from '../harness/desired-file.js';
import { compareTable, equalDiff, PINNED_READ_SQL } from '../harness/exact.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FIXTURE = 'test/fixtures/pagila-like';
const sfx = randomBytes(3).toString('hex');
const OWNER = `pagila_owner_${sfx}`;
const READER = `pagila_reader_${sfx}`;
const SCHEMAS = "('public', 'film_app')";

/** The definitions as the catalog has them, comparable across majors (what only one major has is left out; PostgreSQL 10 prints EXECUTE PROCEDURE for EXECUTE FUNCTION). */
async function definitions(db: TestDatabase): Promise<Record<string, unknown[]>> {
  const q = async (sql: string) => (await db.query(sql)).rows;
  const ns = `(SELECT oid FROM pg_namespace WHERE nspname IN ${SCHEMAS})`;
  return {
    schemas: await q(`SELECT nspname, pg_get_userbyid(nspowner) AS owner, array(SELECT pg_get_userbyid(a.grantee) || ':' || a.privilege_type FROM aclexplode(nspacl) a ORDER BY 1) AS acl FROM pg_namespace WHERE nspname = 'film_app'`),
    relations: await q(`SELECT c.relname, c.relkind, c.relispartition, pg_get_userbyid(c.relowner) AS owner, obj_description(c.oid, 'pg_class') AS comment,
        CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound, (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid) AS parent,
        array(SELECT pg_get_userbyid(a.grantee) || ':' || a.privilege_type FROM aclexplode(c.relacl) a WHERE a.privilege_type <> 'MAINTAIN' ORDER BY 1) AS acl
      FROM pg_class c WHERE c.relnamespace IN ${ns} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I') ORDER BY 1`),
    columns: await q(`SELECT table_name, column_name, data_type, udt_schema, udt_name, is_nullable, column_default, collation_name FROM information_schema.columns WHERE table_schema IN ${SCHEMAS} ORDER BY 1, ordinal_position`),
    constraints: await q(`SELECT conrelid::regclass::text AS rel, contypid::regtype::text AS type, conname, pg_get_constraintdef(k.oid) AS def, coalesce((to_jsonb(k) ->> 'conparentid')::oid <> 0, false) AS inherited FROM pg_constraint k WHERE connamespace IN ${ns} AND contype <> 'n' ORDER BY 1, 2, 3`),
    indexes: await q(`SELECT indexrelid::regclass::text AS index, pg_get_indexdef(indexrelid) AS def, indisvalid, (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = indexrelid) AS parent FROM pg_index WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace IN ${ns}) ORDER BY 1`),
    triggers: await q(`SELECT tgrelid::regclass::text AS rel, tgname, replace(pg_get_triggerdef(oid), 'EXECUTE PROCEDURE', 'EXECUTE FUNCTION') AS def, tgenabled FROM pg_trigger WHERE NOT tgisinternal AND tgname NOT LIKE 'pgconvey%' AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace IN ${ns}) ORDER BY 1, 2`),
    // Functions of their own (not a multirange's constructors, made by CREATE TYPE … RANGE from PostgreSQL 14).
    functions: await q(`SELECT p.oid::regprocedure::text AS f, pg_get_userbyid(p.proowner) AS owner, pg_get_function_result(p.oid) AS result, p.prosrc FROM pg_proc p
      WHERE p.pronamespace IN ${ns} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i') ORDER BY 1`),
    types: await q(`SELECT t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod) AS base, array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS labels
      FROM pg_type t WHERE t.typnamespace IN ${ns} AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) ORDER BY 1`),
    collations: await q(`SELECT collname, collcollate FROM pg_collation WHERE collnamespace IN ${ns} ORDER BY 1`),
  };
}

/** Every row of a relation (a partitioned parent, a view) as text under pinned settings, sorted. */
async function rowsOf(c: pg.Client, relation: string): Promise<string[]> {
  await c.query(PINNED_READ_SQL);
  return (await c.query<{ r: string }>(`SELECT t::text AS r FROM ${relation} t`)).rows.map((x) => x.r).sort();
}

async function sequences(c: pg.Client): Promise<Record<string, bigint>> {
  const names = (await c.query<{ s: string }>(`SELECT n.nspname || '.' || c.relname AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname IN ${SCHEMAS} ORDER BY 1`)).rows;
  const out: Record<string, bigint> = {};
  for (const { s } of names) {
    const r = (await c.query<{ v: string; called: boolean }>(`SELECT last_value AS v, is_called AS called FROM ${s}`)).rows[0]!;
    out[s] = BigInt(r.v) - (r.called ? 0n : 1n);
  }
  return out;
}

/** Moves payments a month on: an UPDATE that moves rows between partitions (PostgreSQL 11+), a DELETE and an INSERT on 10. */
function movePayments(where: string): string {
  return sourceServer().major >= 11
    ? `UPDATE public.payment SET payment_date = payment_date + interval '1 month' WHERE ${where};`
    : `WITH moved AS (DELETE FROM public.payment WHERE ${where} RETURNING *) INSERT INTO public.payment SELECT payment_id, customer_id, amount, payment_date + interval '1 month' FROM moved;`;
}

/**
 * plan again: no change, and no error. Roles belong to the server, and other test files make roles on the
 * same servers meanwhile: with prepare.roles: copy their roles show up as create_role/grant_role actions,
 * which are not this database's changes and are left out.
 */
async function expectNoChanges(file: string, env: NodeJS.ProcessEnv): Promise<void> {
  const r = await runCli(['plan', file, '--json'], { env, timeoutMs: 60_000 });
  const plan = JSON.parse(r.stdout) as { errored: boolean; actions: Array<{ id: string; kind: string; object: string | null }> };
  expect(plan.errored, r.stdout).toBe(false);
  const ours = plan.actions.filter((a) => !((a.kind === 'create_role' || a.kind === 'grant_role') && !(a.object ?? '').includes(sfx)));
  expect(ours.map((a) => a.id)).toEqual([]);
}

describe(`a Pagila-like schema, PostgreSQL ${sourceServer().major} → ${targetServer().major} into an empty database`, () => {
  it('is created, replicated and switched over with the CLI only, identical row by row', { timeout: 300_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'pagila_p'), await freshDatabase(targetServer(), 'pagila_s')];
    const keys = sourceServer().major >= 11 ? 'schema-partition-keys.sql' : 'schema-partition-keys-pg10.sql';
    await p.query(['schema.sql', keys, 'data.sql'].map((f) => readFileSync(`${FIXTURE}/${f}`, 'utf8')).join('\n'));
    await p.query(`
      DO $$ BEGIN CREATE ROLE ${READER} NOLOGIN; CREATE ROLE ${OWNER} LOGIN IN ROLE ${READER}; END $$;
      ALTER SCHEMA film_app OWNER TO ${OWNER};
      ALTER TABLE film_app.language OWNER TO ${OWNER};
      ALTER SEQUENCE film_app.language_id_seq OWNER TO ${OWNER};
      ALTER FUNCTION film_app.is_valid_code(text) OWNER TO ${OWNER};
      GRANT USAGE ON SCHEMA film_app TO ${READER};
      GRANT SELECT ON public.film, public.actor_info TO ${READER};
      COMMENT ON TABLE public.film IS 'films, as in Pagila';
      ANALYZE;`);
    // PostgreSQL 10 has no primary key on a partitioned table: payment's key is named in the file there.
    const yaml = twoNodeYaml({ queue: 'pagila', tables: ['public.*', 'film_app.*'], sequences: ['public.*', 'film_app.*'], extra: 'prepare: { roles: copy, schema: copy, schema_objects: all }' }).replace(
      'tables: { include: ["public.*", "film_app.*"] }',
      sourceServer().major < 11
        ? 'tables: { include: ["public.*", "film_app.*"], entries: { public.payment: { key: [payment_date, payment_id] } } }'
        : 'tables: { include: ["public.*", "film_app.*"] }',
    );
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/pagila.yaml`;
    writeFileSync(file, yaml);
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };

    expect((await runCli(['validate', file], { env })).code).toBe(0);
    const plan = await runCli(['plan', file, '--detailed-exitcode'], { env, timeoutMs: 60_000 });
    expect(plan.code, plan.stdout).toBe(2);
    // An error line starts the line, or follows its FILE:LINE:COL: position.
    expect(plan.stdout).not.toMatch(/^(\S+:\d+:\d+: )?error /m);
    expect(plan.stdout).toContain('warning materialized_view_not_replicated: materialized view public.rental_by_rating');
    expect(plan.stdout).toMatch(/\+ copy_schema pagila\s+table\(s\) film_app\.language, public\.actor, .* creates them from the provider's definitions, with every other object missing here: .*materialized view/);

    const applied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 120_000 });
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    await expectNoChanges(file, env);
    expect(await definitions(s)).toEqual(await definitions(p));

    const run = startCli(['run', file], env);
    const [pc, sc] = [await p.connect(), await s.connect()];
    let open = true;
    try {
      // Writes while the copies run: cascades, the tsvector trigger, rows moving between partitions.
      await pc.query(`
        INSERT INTO public.film (title, description, language_id, rating, special_features, poster)
          VALUES ('Late Film', 'A story of one late dinosaur', 2, 'R', ARRAY['Commentaries'], '\\x00ff'::bytea);
        UPDATE film_app.language SET language_id = 30 WHERE language_id = 3;
        UPDATE public.customer SET customer_id = customer_id + 1000 WHERE customer_id <= 5;
        ${movePayments("payment_id % 50 = 0 AND payment_date < '2022-03-01'")}
        DELETE FROM public.rental WHERE rental_id % 97 = 0;
        INSERT INTO public.payment (customer_id, amount, payment_date) SELECT 7, 1.5, timestamptz '2022-03-15 00:00+00' + g * interval '1 hour' FROM generate_series(1, 50) g;`);

      // A monthly partition added on the old server mid-run: the next plan creates it on new and captures it.
      await pc.query(`CREATE TABLE public.payment_p2022_04 PARTITION OF public.payment FOR VALUES FROM ('2022-04-01 00:00:00+00') TO ('2022-05-01 00:00:00+00')`);
      if (sourceServer().major < 11) await pc.query('ALTER TABLE public.payment_p2022_04 ADD PRIMARY KEY (payment_date, payment_id)');
      const grow = await runCli(['plan', file, '--detailed-exitcode'], { env, timeoutMs: 60_000 });
      expect(grow.code, grow.stdout).toBe(2);
      expect(grow.stdout).toMatch(/\+ copy_schema pagila\s+table\(s\) public\.payment_p2022_04 do not exist here/);
      expect(grow.stdout).toContain('~ capture_table public.payment');
      const applied2 = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(applied2.code, `${applied2.stdout}\n${applied2.stderr}`).toBe(0);
      await expectNoChanges(file, env);
      await pc.query(`INSERT INTO public.payment (customer_id, amount, payment_date) SELECT 9, 2.5, timestamptz '2022-04-02 00:00+00' + g * interval '1 hour' FROM generate_series(1, 30) g;
        ${movePayments("payment_id % 40 = 0 AND payment_date >= '2022-03-01' AND payment_date < '2022-04-01'")}`);

      const tables = (await pc.query<{ s: string; t: string }>(`SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ${SCHEMAS} ORDER BY 1, 2`)).rows;
      expect(tables.map((t) => `${t.s}.${t.t}`)).toContain('public.payment_p2022_04');
      const equal = async () => {
        for (const t of tables) {
          const d = await compareTable(pc, sc, t.s, t.t);
          if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) return false;
        }
        return true;
      };
      await waitFor('every table equal row by row', equal, 120_000, 250).catch(async (err) => {
        for (const t of tables) console.log(`${t.s}.${t.t}`, JSON.stringify(await compareTable(pc, sc, t.s, t.t)).slice(0, 600));
        console.log(run.lines.slice(-40).join('\n'));
        throw err;
      });
      for (const t of tables) {
        const d = await compareTable(pc, sc, t.s, t.t);
        expect(d, `${t.s}.${t.t}`).toEqual(equalDiff(d));
      }
      // The parent (through its partitions) and the views read the same on both sides.
      for (const relation of ['public.payment', 'public.actor_info', 'film_app.film_list']) {
        const [a, b] = [await rowsOf(pc, relation), await rowsOf(sc, relation)];
        expect(b.length, relation).toBe(a.length);
        expect(b, relation).toEqual(a);
      }
      expect((await sc.query("SELECT count(*)::int AS n FROM public.film WHERE fulltext @@ to_tsquery('english', 'dinosaur')")).rows[0].n).toBe(
        (await pc.query("SELECT count(*)::int AS n FROM public.film WHERE fulltext @@ to_tsquery('english', 'dinosaur')")).rows[0].n,
      );
      await waitFor('sequences on new at or past old', async () => {
        const [a, b] = [await sequences(pc), await sequences(sc)];
        return Object.keys(a).length > 0 && Object.entries(a).every(([k, v]) => b[k] !== undefined && b[k]! >= v);
      }, 60_000, 250);
      await expectNoChanges(file, env);
      expect(await definitions(s)).toEqual(await definitions(p));

      // The materialized view: created empty by the copy, refreshed by the switchover before the hand-over.
      expect((await sc.query("SELECT relispopulated FROM pg_class WHERE oid = 'public.rental_by_rating'::regclass")).rows[0].relispopulated).toBe(false);
      // The switchover ends every other session: close ours first.
      open = false;
      await pc.end();
      await sc.end();
      const sw = await runCli(['switchover', file, '--to', 'new_leaf', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(sw.code, sw.stdout).toBe(0);
      expect(sw.stdout).toMatch(/matviews .*1 of 1 materialized view\(s\) on "new_leaf" refreshed/);
      const after = await s.connect();
      try {
        const view = await rowsOf(after, 'public.rental_by_rating');
        expect(view.length).toBe(5);
        expect(view).toEqual(await rowsOf(after, '(SELECT f.rating, count(*) AS rentals FROM public.rental r JOIN public.film f USING (film_id) GROUP BY f.rating)'));
      } finally {
        await after.end();
      }
    } finally {
      if (open) {
        await pc.end();
        await sc.end();
      }
      await run.kill('SIGTERM');
    }
  });
});
