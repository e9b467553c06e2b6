/**
 * Fresh databases for a test file: `freshDatabase(server)` creates a randomly
 * named database and registers it for dropping after the file's tests.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';
import type { ServerInfo } from './servers.js';

export interface TestDatabase {
  server: ServerInfo;
  name: string;
  /** A libpq key=value DSN for the database. */
  dsn: string;
  config: pg.ClientConfig;
  /** A new connected client; the caller ends it (or use `query`). */
  connect(): Promise<pg.Client>;
  /** Runs one statement on a short-lived connection. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

const created: Array<{ server: ServerInfo; name: string }> = [];
let registered = false;

function adminConfig(server: ServerInfo, database = 'postgres'): pg.ClientConfig {
  return { host: server.host, port: server.port, user: server.user, database };
}

/** Runs `sql` on the server's postgres database as the test superuser (roles, and other cluster-wide objects). */
export async function serverQuery(server: ServerInfo, sql: string): Promise<void> {
  const c = new pg.Client(adminConfig(server));
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function freshDatabase(server: ServerInfo, prefix = 't'): Promise<TestDatabase> {
  if (!registered) {
    registered = true;
    afterAll(dropCreatedDatabases);
  }
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client(adminConfig(server));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
  } finally {
    await admin.end();
  }
  created.push({ server, name });
  const config = adminConfig(server, name);
  return {
    server,
    name,
    dsn: `host=${server.host} port=${server.port} user=${server.user} dbname=${name}`,
    config,
    async connect() {
      const c = new pg.Client(config);
      await c.connect();
      return c;
    },
    async query(sql, params) {
      const c = new pg.Client(config);
      await c.connect();
      try {
        return await c.query(sql, params);
      } finally {
        await c.end();
      }
    },
  };
}

async function dropCreatedDatabases(): Promise<void> {
  for (const { server, name } of created.splice(0)) {
    const admin = new pg.Client(adminConfig(server));
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(async () => {
        // WITH (FORCE) exists from PG 13; older servers: end the sessions first.
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        await admin.query(`DROP DATABASE IF EXISTS ${name}`);
      });
    } finally {
      await admin.end();
    }
  }
}
