/**
 * Secrets on real servers: a login role whose password is hard to quote (set
 * with ALTER ROLE … PASSWORD, checked by md5/SCRAM through pg_hba.conf) is
 * given in every form a file can take; validate, plan, apply, status (human
 * and --json) and the daemons' logs must never print any 3 consecutive
 * characters of it — neither with the right password nor with a wrong one.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer, type ServerInfo } from '../harness/servers.js';

const ROLE = 'pgc_secret_owner';
/** The reported one, and one with every character that breaks a DSN. */
const PASSWORDS = ['Pw#7f3k@Q9!z zz', "Qx7 k'L\\9v%41#@:/?&=Żółw🐢"];
const WRONG = "Wq0X k'L%z#@🐢";

function leakOf(text: string, secret: string): string | null {
  const chars = [...secret];
  for (let i = 0; i + 3 <= chars.length; i++) {
    const piece = chars.slice(i, i + 3).join('');
    if (text.includes(piece)) return piece;
  }
  return null;
}

const sqlLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
const kvQuote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

async function admin<T>(server: ServerInfo, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: 'postgres' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Makes ROLE log in with a password on `server` (its own pg_hba.conf line, first), and waits until the server checks it. */
async function requirePassword(server: ServerInfo): Promise<void> {
  await admin(server, async (c) => {
    const hba = (await c.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const text = readFileSync(hba, 'utf8');
    const line = `host all ${ROLE} 127.0.0.1/32 md5`;
    if (!text.includes(line)) writeFileSync(hba, `${line}\n${text}`);
    await c.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE}') THEN CREATE ROLE ${ROLE} LOGIN SUPERUSER; END IF; END $$`);
    await c.query(`ALTER ROLE ${ROLE} PASSWORD ${sqlLiteral('not-this-one')}`);
    await c.query('SELECT pg_reload_conf()');
  });
  await waitFor(`${server.host}:${server.port} to check passwords of ${ROLE}`, async () => {
    const c = new pg.Client({ host: server.host, port: server.port, user: ROLE, password: 'wrong', database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      return false;
    } catch (err) {
      return (err as { code?: string }).code === '28P01';
    }
  }, 15_000, 100);
}

async function setPassword(password: string): Promise<void> {
  for (const server of [sourceServer(), targetServer()]) await admin(server, (c) => c.query(`ALTER ROLE ${ROLE} PASSWORD ${sqlLiteral(password)}`));
}

interface Form {
  label: string;
  /** YAML of one database entry for `db`, and the environment it needs. */
  entry(db: TestDatabase, pw: string): { yaml: string; env: NodeJS.ProcessEnv };
}

const FORMS: Form[] = [
  { label: 'key=value DSN with password=${VAR}', entry: (db, pw) => ({ yaml: `{ dsn: "host=${db.server.host} port=${db.server.port} user=${ROLE} dbname=${db.name} password=\${PW_${db.name}}" }`, env: { [`PW_${db.name}`]: pw } }) },
  { label: 'key=value DSN quoted in the file', entry: (db, pw) => ({ yaml: JSON.stringify(`host=${db.server.host} port=${db.server.port} user=${ROLE} password=${kvQuote(pw)} dbname=${db.name}`), env: {} }) },
  { label: 'URL DSN percent-encoded, from ${VAR}', entry: (db, pw) => ({ yaml: `"\${DSN_${db.name}}"`, env: { [`DSN_${db.name}`]: `postgresql://${ROLE}:${encodeURIComponent(pw)}@${db.server.host}:${db.server.port}/${db.name}` } }) },
  { label: 'separate fields, password: ${VAR}', entry: (db, pw) => ({ yaml: `{ host: ${db.server.host}, port: ${db.server.port}, user: ${ROLE}, dbname: ${db.name}, password: "\${PW_${db.name}}" }`, env: { [`PW_${db.name}`]: pw } }) },
  { label: 'PGPASSWORD', entry: (db, pw) => ({ yaml: `"host=${db.server.host} port=${db.server.port} user=${ROLE} dbname=${db.name}"`, env: { PGPASSWORD: pw } }) },
];

function writeFile(p: TestDatabase, s: TestDatabase, form: Form, pw: string): { file: string; env: NodeJS.ProcessEnv } {
  const a = form.entry(p, pw);
  const b = form.entry(s, pw);
  const dir = mkdtempSync(join(tmpdir(), 'pgconvey-secrets-'));
  const file = join(dir, 'desired.yaml');
  writeFileSync(
    file,
    `version: 1
databases:
  old: ${a.yaml}
  new: ${b.yaml}
queues:
  shop:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables:
      include: ["public.*"]
`,
  );
  return { file, env: { ...a.env, ...b.env } };
}

/** Runs a command and fails with the leaked piece when its output holds any part of `secret`. */
async function expectNoLeak(args: string[], env: NodeJS.ProcessEnv, secret: string): Promise<{ code: number; out: string }> {
  const r = await runCli(args, { env, timeoutMs: 60_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(leakOf(out, secret), `pgconvey ${args.join(' ')} printed a piece of the password:\n${out}`).toBeNull();
  return { code: r.code, out };
}

describe('no command prints any part of a password', () => {
  beforeAll(async () => {
    await requirePassword(sourceServer());
    await requirePassword(targetServer());
  }, 60_000);

  for (const [i, pw] of PASSWORDS.entries()) {
    for (const form of i === 0 ? FORMS.slice(0, 1) : FORMS) {
      it(`${form.label}: ${JSON.stringify(pw)}`, { timeout: 180_000 }, async () => {
        await setPassword(pw);
        const p = await freshDatabase(sourceServer(), 'sec_p');
        const s = await freshDatabase(targetServer(), 'sec_s');
        for (const db of [p, s]) await db.query('CREATE TABLE public.orders (id bigserial PRIMARY KEY, note text)');
        await p.query("INSERT INTO public.orders (note) VALUES ('a'), ('b')");
        const { file, env } = writeFile(p, s, form, pw);

        expect((await expectNoLeak(['validate', file], env, pw)).code).toBe(0);
        await expectNoLeak(['validate', file, '--json'], env, pw);
        const plan = await expectNoLeak(['plan', file], env, pw);
        expect(plan.code, plan.out).toBe(0);
        expect(plan.out).toContain('install_engine');
        await expectNoLeak(['plan', file, '--json'], env, pw);
        const applied = await expectNoLeak(['apply', file, '--auto-approve'], env, pw);
        expect(applied.code, applied.out).toBe(0);
        expect(applied.out).toContain('Apply complete');
        await expectNoLeak(['status', file], env, pw);
        await expectNoLeak(['status', file, '--json'], env, pw);

        // The daemons' logs, human and JSON, while they copy and apply.
        for (const format of ['human', 'json']) {
          const run = startCli(['run', file, '--log-format', format], env);
          await run.waitForLine(/applying|copied|copy/i, 60_000);
          await run.kill('SIGTERM');
          await run.exited;
          const logs = run.lines.join('\n');
          expect(leakOf(logs, pw), `run --log-format ${format} printed a piece of the password:\n${logs}`).toBeNull();
        }

        // A wrong password: every command that connects fails with wrong_password, printing nothing of it.
        const wrong = writeFile(p, s, form, WRONG);
        for (const args of [['plan', wrong.file], ['plan', wrong.file, '--json'], ['apply', wrong.file, '--auto-approve'], ['status', wrong.file], ['status', wrong.file, '--json']]) {
          const r = await expectNoLeak(args, wrong.env, WRONG);
          expect(r.code, r.out).not.toBe(0);
          // JSON and errors carry the code; the human status table says it in words.
          expect(r.out).toMatch(/wrong_password|password authentication failed/);
          expect(leakOf(r.out, pw)).toBeNull();
        }
        const run = startCli(['run', wrong.file, '--log-format', 'json'], wrong.env);
        await run.waitForLine(/wrong_password|password authentication/, 60_000).catch(() => undefined);
        await run.kill('SIGTERM');
        await run.exited;
        expect(leakOf(run.lines.join('\n'), WRONG), run.lines.join('\n')).toBeNull();
      });
    }
  }

  it('a malformed DSN gets invalid_dsn and a hint, never a raw exception', { timeout: 60_000 }, async () => {
    const pw = 'Bd%zq k#9@x/y';
    const dir = mkdtempSync(join(tmpdir(), 'pgconvey-secrets-'));
    for (const [label, dsn] of [
      ['raw % and # in a URL', `postgres://${ROLE}:${pw}@127.0.0.1:5432/db`],
      ['bare spaces in key=value', `host=127.0.0.1 user=${ROLE} password=${pw} dbname=db`],
      ['URL with the password as a port', `postgres://${ROLE}@127.0.0.1:${pw}/db`],
    ]) {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, `version: 1\ndatabases:\n  old: { dsn: "\${BAD}" }\n  new: "host=127.0.0.1 dbname=x"\nqueues:\n  q:\n    nodes:\n      a: { database: old, type: root }\n      b: { database: new, type: leaf, provider: a }\n    tables: { include: ["public.*"] }\n`);
      for (const args of [['validate', file], ['validate', file, '--json'], ['plan', file], ['status', file]]) {
        const r = await expectNoLeak(args, { BAD: dsn }, pw);
        expect(r.code, `${label}: ${r.out}`).toBe(1);
        expect(r.out, label).toContain('invalid_dsn');
        expect(r.out, label).toContain('hint');
        expect(r.out, label).not.toMatch(/URIError|at .*\.js:\d+/);
      }
    }
  });
});
