/**
 * A managed-service emulation (RDS, Cloud SQL, Azure) on a test server: the
 * provider's console is the real superuser, used here only to set things up;
 * pgconvey and the application get what such a service gives them.
 *
 * On each server: an admin role like `rds_superuser`'s login (LOGIN,
 * CREATEROLE, CREATEDB, NOT superuser, a member of pg_signal_backend, a
 * SCRAM password that reaches pgconvey through `${VAR}` in the file), which
 * creates the application roles itself (so on PostgreSQL 16+ it holds them
 * WITH ADMIN but neither INHERIT nor SET, as there); an application owner
 * role (NOLOGIN) that owns the tables; a writer role (LOGIN) with DML grants
 * only; a database owned either by the admin (it ran CREATE DATABASE, as on
 * RDS) or by the application owner; production timeouts on the admin, the
 * writer and the database (statement 30s, idle in transaction 60s, lock 5s);
 * and on PostgreSQL 15+ `GRANT SET ON PARAMETER session_replication_role`
 * to the admin, as the console of such a service does.
 *
 * Every role name carries a random suffix (roles are the server's, shared
 * by test files running in parallel); the roles log in by SCRAM through a
 * pg_hba.conf line for members of `pgc_managed` (checked: a wrong password
 * is refused).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { waitFor } from './compare.js';
import type { ServerInfo } from './servers.js';

/** The group whose members must log in with a SCRAM password (one pg_hba.conf line). */
const LOGIN_GROUP = 'pgc_managed';
export const TIMEOUTS = { statement_timeout: '30s', idle_in_transaction_session_timeout: '60s', lock_timeout: '5s' } as const;

export interface ManagedDatabase {
  server: ServerInfo;
  major: number;
  database: string;
  /** The rds_superuser-like login pgconvey connects as. */
  admin: string;
  password: string;
  /** The application role that owns the tables. */
  owner: string;
  /** The application's login, with INSERT/UPDATE/DELETE/SELECT only. */
  writer: string;
  writerPassword: string;
  /** Who owns the database: the admin (RDS: it ran CREATE DATABASE) or the application owner. */
  databaseOwner: string;
  /** A DSN for the file, its password as `${envVar}`. */
  dsn(envVar: string): string;
  /** pg config for the admin, the writer, and the real superuser (setup and independent checks only). */
  adminConfig(): pg.ClientConfig;
  writerConfig(): pg.ClientConfig;
  superConfig(): pg.ClientConfig;
  /** Runs SQL as the admin (the grants a managed-service DBA can give). */
  asAdmin(sql: string): Promise<void>;
  /** Runs SQL as the real superuser (what only the provider's console can do). */
  asSuper(sql: string, database?: string): Promise<void>;
}

export interface ManagedOptions {
  /** Who owns the database. */
  databaseOwner: 'admin' | 'owner';
  /** Tables to create (run as the owner role); '' for none. Use unqualified role names via {owner} / {writer}. */
  schema?: string;
  /** Create the application roles (the owner and the writer) on this server; false: only the admin. */
  roles?: { owner: string; writer: string };
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

async function run(config: pg.ClientConfig, sql: string): Promise<void> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    // A fenced (standby) database starts sessions read-only; a DBA's grants go through anyway.
    await c.query('SET default_transaction_read_only = off');
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Makes members of LOGIN_GROUP log in by SCRAM on `server`; waits until a wrong password is refused for `probe`. */
async function requireScram(server: ServerInfo, probe: string): Promise<void> {
  const superConfig = { host: server.host, port: server.port, user: server.user, database: 'postgres' };
  await waitFor(`${server.host}:${server.port} to check SCRAM passwords of ${probe}`, async () => {
    const c = new pg.Client(superConfig);
    await c.connect();
    try {
      const hba = (await c.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
      const text = readFileSync(hba, 'utf8');
      const line = `host all +${LOGIN_GROUP} 127.0.0.1/32 scram-sha-256`;
      // Another test file may rewrite the file at the same time: add the line again until it holds.
      if (!text.includes(line)) writeFileSync(hba, `${line}\n${text}`);
      await c.query('SELECT pg_reload_conf()');
    } finally {
      await c.end();
    }
    const wrong = new pg.Client({ host: server.host, port: server.port, user: probe, password: 'not-the-password', database: 'postgres' });
    try {
      await wrong.connect();
      await wrong.end();
      return false;
    } catch (err) {
      return (err as { code?: string }).code === '28P01';
    }
  }, 20_000, 100);
}

/** Sets up the emulation on `server`; returns how to reach it. */
export async function managedDatabase(server: ServerInfo, options: ManagedOptions): Promise<ManagedDatabase> {
  const suffix = randomBytes(4).toString('hex');
  const admin = `adm_${suffix}`;
  const owner = options.roles?.owner ?? `app_${suffix}`;
  const writer = options.roles?.writer ?? `web_${suffix}`;
  const database = `m_${suffix}`;
  const password = `Sc!${randomBytes(9).toString('base64url')}`;
  const writerPassword = `Wr!${randomBytes(9).toString('base64url')}`;
  const major = Math.floor(Number(await serverVersionNum(server)) / 10000);
  const superConfig = (db = 'postgres'): pg.ClientConfig => ({ host: server.host, port: server.port, user: server.user, database: db });
  const adminConfig = (db = 'postgres'): pg.ClientConfig => ({ host: server.host, port: server.port, user: admin, password, database: db });

  // The console (superuser): the admin role as the service creates it.
  await run(
    superConfig(),
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${LOGIN_GROUP}') THEN CREATE ROLE ${LOGIN_GROUP} NOLOGIN; END IF; END $$;
     SET password_encryption = 'scram-sha-256';
     CREATE ROLE ${ident(admin)} LOGIN CREATEROLE CREATEDB NOSUPERUSER IN ROLE ${LOGIN_GROUP}, pg_signal_backend PASSWORD ${literal(password)};
     ${Object.entries(TIMEOUTS).map(([k, v]) => `ALTER ROLE ${ident(admin)} SET ${k} = ${literal(v)};`).join('\n')}
     ${major >= 15 ? `GRANT SET ON PARAMETER session_replication_role TO ${ident(admin)};` : ''}`,
  );
  await requireScram(server, admin);

  // The admin creates the application's roles (PG 16+: it holds them WITH ADMIN, not INHERIT or SET).
  const createRoles = !options.roles || !(await roleExists(server, owner));
  if (createRoles) {
    await run(
      adminConfig(),
      `SET password_encryption = 'scram-sha-256';
       CREATE ROLE ${ident(owner)} NOLOGIN;
       CREATE ROLE ${ident(writer)} LOGIN PASSWORD ${literal(writerPassword)};
       ${Object.entries(TIMEOUTS).map(([k, v]) => `ALTER ROLE ${ident(writer)} SET ${k} = ${literal(v)};`).join('\n')}`,
    );
    // pg_hba's SCRAM line is for the group's members; membership in a group is the console's to give here.
    await run(superConfig(), `GRANT ${LOGIN_GROUP} TO ${ident(writer)}`);
  } else {
    await run(superConfig(), `SET password_encryption = 'scram-sha-256'; ALTER ROLE ${ident(writer)} PASSWORD ${literal(writerPassword)}`);
  }

  // The database: made by the admin (RDS), or by the console for the application owner.
  if (options.databaseOwner === 'admin') await run(adminConfig(), `CREATE DATABASE ${ident(database)} TEMPLATE template0 ENCODING 'UTF8'`);
  else await run(superConfig(), `CREATE DATABASE ${ident(database)} OWNER ${ident(owner)} TEMPLATE template0 ENCODING 'UTF8'`);
  await run(superConfig(), Object.entries(TIMEOUTS).map(([k, v]) => `ALTER DATABASE ${ident(database)} SET ${k} = ${literal(v)};`).join('\n'));
  registerCleanup(server, database, [admin, ...(createRoles ? [owner, writer] : [])]);

  if (options.schema) {
    const sql = options.schema.replaceAll('{owner}', ident(owner)).replaceAll('{writer}', ident(writer));
    // From PG 15 public is the database owner's: the admin lets the application's owner create there, as its DBA would.
    if (major >= 15 && options.databaseOwner === 'admin') await run(adminConfig(database), `GRANT CREATE ON SCHEMA public TO ${ident(owner)}`);
    // The application's migrations, run as the owner role (the superuser here only to become it).
    await run(superConfig(database), `SET ROLE ${ident(owner)}; ${sql}`);
  }

  return {
    server,
    major,
    database,
    admin,
    password,
    owner,
    writer,
    writerPassword,
    databaseOwner: options.databaseOwner === 'admin' ? admin : owner,
    dsn: (envVar) => `host=${server.host} port=${server.port} user=${admin} dbname=${database} password=\${${envVar}}`,
    adminConfig: () => adminConfig(database),
    writerConfig: () => ({ host: server.host, port: server.port, user: writer, password: writerPassword, database }),
    superConfig: () => superConfig(database),
    asAdmin: (sql) => run(adminConfig(database), sql),
    asSuper: (sql, db = database) => run(superConfig(db), sql),
  };
}

async function serverVersionNum(server: ServerInfo): Promise<string> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: 'postgres' });
  await c.connect();
  try {
    return (await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v;
  } finally {
    await c.end();
  }
}

async function roleExists(server: ServerInfo, role: string): Promise<boolean> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: 'postgres' });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount! > 0;
  } finally {
    await c.end();
  }
}

const cleanups: Array<() => Promise<void>> = [];

function registerCleanup(server: ServerInfo, database: string, roles: string[]): void {
  cleanups.push(async () => {
    const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: 'postgres' });
    await c.connect().catch(() => undefined);
    try {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
      await c.query(`DROP DATABASE IF EXISTS ${ident(database)}`);
      for (const r of roles) {
        // What a role owns or was granted in other databases (postgres) goes with it.
        await c.query(`DROP OWNED BY ${ident(r)} CASCADE`).catch(() => undefined);
        await c.query(`DROP ROLE IF EXISTS ${ident(r)}`).catch(() => undefined);
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  });
}

/** Drops every database and role the emulation made (call in afterAll; servers of the file's own are simply stopped). */
export async function dropManaged(): Promise<void> {
  for (const f of cleanups.splice(0).reverse()) await f().catch(() => undefined);
}
