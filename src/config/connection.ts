/**
 * Connection settings of one database entry: a DSN (URL or libpq key=value)
 * or separate fields, turned into one `ConnectionSpec` plus a display form
 * with the password masked. Parsing errors name the problem without ever
 * echoing the password.
 */
import { closest, maskDsn } from '../kernel/index.js';

export interface ConnectionSpec {
  host?: string;
  port?: number;
  user?: string;
  /** Never print this; `display` is the printable form. */
  password?: string;
  dbname?: string;
  sslmode?: string;
  application_name?: string;
  connect_timeout_ms?: number;
}

export type RawDatabase =
  | string
  | {
      dsn?: string;
      host?: string;
      port?: number | string;
      user?: string;
      password?: string;
      dbname?: string;
      sslmode?: string;
      application_name?: string;
      connect_timeout?: string;
    };

const KV_KEYS = ['host', 'hostaddr', 'port', 'user', 'password', 'dbname', 'sslmode', 'application_name', 'connect_timeout'] as const;

export class DsnError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Parses a DSN in URL or key=value form. Throws DsnError (with a masked message). */
export function parseDsn(dsn: string): ConnectionSpec {
  return /^postgres(ql)?:\/\//i.test(dsn) ? parseUrlDsn(dsn) : parseKeyValueDsn(dsn);
}

function parseUrlDsn(dsn: string): ConnectionSpec {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new DsnError(`the DSN ${maskDsn(dsn)} is not a valid URL`, 'write postgres://user@host:5432/dbname and percent-encode special characters in the user and password (or give the password in the separate `password:` field)');
  }
  const spec: ConnectionSpec = {};
  if (url.hostname) spec.host = decodeURIComponent(url.hostname.replace(/^\[|\]$/g, ''));
  if (url.port) spec.port = Number(url.port);
  if (url.username) spec.user = decodeURIComponent(url.username);
  if (url.password) spec.password = decodeURIComponent(url.password);
  const db = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (db) spec.dbname = db;
  for (const [key, value] of url.searchParams) applyKey(spec, key, value, dsn);
  return spec;
}

function parseKeyValueDsn(dsn: string): ConnectionSpec {
  const spec: ConnectionSpec = {};
  let i = 0;
  const s = dsn;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  skipSpace();
  if (i >= s.length) throw new DsnError('the DSN is empty', 'write host=… port=… user=… dbname=…, or a postgres:// URL');
  while (i < s.length) {
    const keyStart = i;
    while (i < s.length && /[A-Za-z_]/.test(s[i]!)) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    if (!key || s[i] !== '=') {
      throw new DsnError(`the DSN ${maskDsn(dsn)} is not in key=value form near "${maskDsn(s.slice(keyStart, keyStart + 12))}"`, 'write space-separated key=value pairs, e.g. host=db1 port=5432 dbname=app, or a postgres:// URL');
    }
    i++;
    skipSpace();
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < s.length) {
        const ch = s[i]!;
        if (ch === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (ch === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += ch;
          i++;
        }
      }
      if (!closed) throw new DsnError(`the DSN ${maskDsn(dsn)} has an unterminated quoted value for "${key}"`, "close the value with a single quote; write \\' for a quote inside it");
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i];
        i++;
      }
    }
    applyKey(spec, key, value, dsn);
    skipSpace();
  }
  return spec;
}

function applyKey(spec: ConnectionSpec, key: string, value: string, dsn: string): void {
  switch (key) {
    case 'host':
    case 'hostaddr':
      spec.host = value;
      return;
    case 'port': {
      const port = Number(value);
      if (!/^\d{1,5}$/.test(value) || port < 1 || port > 65535) {
        throw new DsnError(`the DSN ${maskDsn(dsn)} has port "${value}", which is not a port number`, 'use a number from 1 to 65535');
      }
      spec.port = port;
      return;
    }
    case 'user':
      spec.user = value;
      return;
    case 'password':
      spec.password = value;
      return;
    case 'dbname':
      spec.dbname = value;
      return;
    case 'sslmode':
      spec.sslmode = value;
      return;
    case 'application_name':
      spec.application_name = value;
      return;
    case 'connect_timeout': {
      const secs = Number(value);
      if (!Number.isFinite(secs) || secs < 0) throw new DsnError(`the DSN ${maskDsn(dsn)} has connect_timeout "${value}", which is not a number of seconds`, 'write connect_timeout=10');
      spec.connect_timeout_ms = secs * 1000;
      return;
    }
    default: {
      const guess = closest(key, KV_KEYS);
      throw new DsnError(
        `the DSN ${maskDsn(dsn)} has the unknown key "${key}"`,
        guess ? `did you mean "${guess}"? Known keys: ${KV_KEYS.join(', ')}` : `known keys: ${KV_KEYS.join(', ')}`,
      );
    }
  }
}

/** A printable one-line description: `user@host:port/dbname`, never with the password. */
export function describeConnection(spec: ConnectionSpec): string {
  const user = spec.user ? `${spec.user}@` : '';
  const host = spec.host ?? 'localhost';
  const port = spec.port ? `:${spec.port}` : '';
  const db = spec.dbname ? `/${spec.dbname}` : '';
  return `${user}${host}${port}${db}`;
}
