/**
 * Opening connections: a ConnectionSpec (from the desired state, or a DSN on
 * the command line) becomes a connected `pg.Client` with an application_name
 * that names the pgconvey role (`pgconvey:worker`…) and none of the server's
 * timeouts (statement, lock, idle in transaction…), and connection failures
 * become messages that say what to fix — never with a password in them.
 */
import pg from 'pg';
import { maskDsn, PgconveyError, scrubSecrets } from '../kernel/index.js';
import { describeConnection, type ConnectionSpec } from '../config/connection.js';
import { NO_TIMEOUTS_SQL, NO_TIMEOUTS_STARTUP_OPTIONS } from './session-settings.js';

export type PgClient = pg.Client;


export function clientConfig(spec: ConnectionSpec, role: string): pg.ClientConfig {
  return {
    host: spec.host,
    port: spec.port,
    user: spec.user,
    password: spec.password,
    database: spec.dbname,
    application_name: spec.application_name ?? `pgconvey:${role}`,
    connectionTimeoutMillis: spec.connect_timeout_ms ?? 10_000,
    // Notice a peer that vanished without closing (a cut network) instead of waiting on it forever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // A switchover fences the old root with `ALTER DATABASE … SET default_transaction_read_only`;
    // pgconvey's own sessions (ticks, batches, the reverse worker) must still write there.
    // The server's (database's, role's) timeouts must not cancel a COPY, a batch or a merge: every
    // session starts without them, and a wait that must stay short bounds itself (SET LOCAL lock_timeout).
    options: `-c default_transaction_read_only=off ${NO_TIMEOUTS_STARTUP_OPTIONS}`,
    ...(spec.sslmode && spec.sslmode !== 'disable' && spec.sslmode !== 'allow' && spec.sslmode !== 'prefer'
      ? { ssl: spec.sslmode === 'require' ? { rejectUnauthorized: false } : true }
      : {}),
  };
}

export class ConnectionError extends PgconveyError {
  /** The hint again, under the name the CLI framework prints as "Try this". */
  readonly suggestions: string[];
  constructor(message: string, hint: string, code: string) {
    super(code, message, hint);
    this.suggestions = [hint];
  }
}

/** Connects, translating the usual failures into a ConnectionError with a hint. */
export async function connect(spec: ConnectionSpec, role: string): Promise<PgClient> {
  const client = new pg.Client(clientConfig(spec, role));
  // An idle client whose server goes away emits 'error'; without a listener that would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    // The newer timeouts (idle_session_timeout: 14, transaction_timeout: 17), where the server has them.
    await client.query(NO_TIMEOUTS_SQL);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw translateConnectError(err, spec);
  }
  return client;
}

export function translateConnectError(err: unknown, spec: ConnectionSpec): ConnectionError {
  const where = describeConnection(spec);
  const e = err as { code?: string; message?: string };
  const message = scrubSecrets(maskDsn(String(e.message ?? err)), spec.password ? [spec.password] : []);
  switch (e.code) {
    case 'ECONNREFUSED':
      return new ConnectionError(`cannot connect to ${where}: connection refused`, 'check that the server is running and listening on that host and port', 'connection_refused');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConnectionError(`cannot connect to ${where}: unknown host`, 'check the host name', 'unknown_host');
    case 'ETIMEDOUT':
      return new ConnectionError(`cannot connect to ${where}: timed out`, 'check the host, port and firewall, or raise connect_timeout', 'connection_timeout');
    case '28P01':
      return new ConnectionError(`cannot connect to ${where}: password authentication failed`, 'check the password (and the variable it comes from)', 'wrong_password');
    case '28000':
      return new ConnectionError(`cannot connect to ${where}: ${message}`, 'allow this user and host in pg_hba.conf, or use another user', 'not_authorized');
    case '3D000':
      return new ConnectionError(`cannot connect to ${where}: the database does not exist`, 'check dbname, or create the database first', 'unknown_database');
    default:
      if (/timeout/i.test(message)) {
        return new ConnectionError(`cannot connect to ${where}: timed out`, 'check the host, port and firewall, or raise connect_timeout', 'connection_timeout');
      }
      return new ConnectionError(`cannot connect to ${where}: ${message}`, 'check the connection settings', 'connection_failed');
  }
}
