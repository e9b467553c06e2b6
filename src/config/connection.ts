/**
 * Connection settings of one database entry: a DSN (URL or libpq key=value)
 * or separate fields, turned into one `ConnectionSpec` plus a display form
 * with the password masked. Parsing errors name the problem without ever
 * echoing the password.
 */
import { PgconveyError, closest } from '../kernel/index.js';

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

/** The stable diagnostic code of every DSN that cannot be parsed. */
export const INVALID_DSN = 'invalid_dsn';

/**
 * A DSN that cannot be parsed. Its message and hint never hold any text of
 * the DSN except the names of known keys (and of an unknown key written
 * before any password): a fragment of a DSN may be a fragment of a password.
 */
export class DsnError extends PgconveyError {
  declare readonly code: typeof INVALID_DSN;
  constructor(message: string, hint: string) {
    super(INVALID_DSN, message, hint);
  }
}

const KV_PASSWORD_HINT =
  "a password with spaces, quotes or backslashes must be quoted: password='…' with \\' for a quote and \\\\ for a backslash inside (from the environment: password='${VAR}'), or give it in the separate `password:` field";
const URL_PASSWORD_HINT =
  'percent-encode special characters of the user and password (% as %25, @ as %40, # as %23, / as %2F, : as %3A, space as %20), or give the password in the separate `password:` field';

/** Parses a DSN in URL or key=value form. Throws DsnError (whose message holds no part of the DSN's values). */
export function parseDsn(dsn: string): ConnectionSpec {
  return /^postgres(ql)?:\/\//i.test(dsn) ? parseUrlDsn(dsn) : parseKeyValueDsn(dsn);
}

/**
 * A postgres:// URL, read like libpq reads it, but leniently where a password
 * is concerned: the user information runs to the LAST "@", so an unencoded
 * password may hold "@", ":", "/", "?" or "#" (an "@" in the database name or
 * query must then be written %40). Percent-encodings are decoded as UTF-8.
 */
function parseUrlDsn(dsn: string): ConnectionSpec {
  let rest = dsn.replace(/^postgres(ql)?:\/\//i, '');
  const spec: ConnectionSpec = {};
  const at = rest.lastIndexOf('@');
  let hasPassword = false;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    // An "@" of a password given in the query (or of a bad URL) lands here: the split is not trustworthy.
    if (/[/?#@]/.test(user)) throw new DsnError('the URL DSN cannot be split into user, password and host (an "@" appears where it must be percent-encoded)', URL_PASSWORD_HINT);
    if (user) spec.user = percentDecode(user, 'the user name');
    if (colon >= 0) {
      hasPassword = true;
      const password = userinfo.slice(colon + 1);
      if (password) spec.password = percentDecode(password, 'the password');
    }
  }
  const q = rest.indexOf('?');
  const query = q >= 0 ? rest.slice(q + 1) : '';
  const hostPath = q >= 0 ? rest.slice(0, q) : rest;
  const slash = hostPath.indexOf('/');
  const hostPort = slash >= 0 ? hostPath.slice(0, slash) : hostPath;
  const path = slash >= 0 ? hostPath.slice(slash + 1) : '';
  const hint = (h: string) => (hasPassword ? `${h}; ${URL_PASSWORD_HINT}` : h);
  let host = hostPort;
  let port: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) throw new DsnError('the host of the URL DSN opens a "[" (an IPv6 address) that is never closed', hint('write postgres://user@[::1]:5432/dbname'));
    host = hostPort.slice(1, close);
    if (!/^[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?$/.test(host)) throw new DsnError('the host of the URL DSN is not an IPv6 address', hint('write postgres://user@[::1]:5432/dbname'));
    const after = hostPort.slice(close + 1);
    if (after && !after.startsWith(':')) throw new DsnError('the host of the URL DSN has text after its "]"', hint('write postgres://user@[::1]:5432/dbname'));
    if (after) port = after.slice(1);
  } else {
    const colon = hostPort.lastIndexOf(':');
    if (colon >= 0) {
      host = hostPort.slice(0, colon);
      port = hostPort.slice(colon + 1);
    }
  }
  if (host.includes(',')) throw new DsnError('the URL DSN names several hosts, which pgconvey does not support', 'name one host per database entry');
  if (host) {
    spec.host = percentDecode(host, 'the host');
    // A host name, an IPv4 address, or a socket directory (percent-encoded "/…"); anything else means the URL was split wrongly.
    if (!hostPort.startsWith('[') && !/^[A-Za-z0-9._-]+$/.test(spec.host) && !spec.host.startsWith('/')) {
      throw new DsnError('the host of the URL DSN is not a host name, an IP address or a socket directory', hint('write postgres://user:password@host:5432/dbname'));
    }
  }
  if (port !== undefined && port !== '') applyKey(spec, 'port', port, hasPassword);
  const db = percentDecode(path, 'the database name');
  if (db) spec.dbname = db;
  if (query) {
    // An unencoded "&" in a password given as ?password=… makes its rest look like further parameters.
    let queryPassword = false;
    for (const pair of query.split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq < 0) {
        throw new DsnError(`a query parameter of the URL DSN has no "="${queryPassword ? ' after the password' : ''}`, queryPassword ? URL_PASSWORD_HINT : hint('write ?key=value&key=value'));
      }
      const key = percentDecode(pair.slice(0, eq), 'a query parameter');
      const value = percentDecode(pair.slice(eq + 1), key === 'password' ? 'the password' : `the value of ${knownKey(key) ?? 'a query parameter'}`);
      applyKey(spec, key, value, queryPassword, queryPassword);
      if (key === 'password') queryPassword = true;
    }
  }
  return spec;
}

/** `%XX` decoded as UTF-8 bytes; a "%" that starts no encoding, or bytes that are not UTF-8, are refused (nothing of the text is echoed). */
function percentDecode(text: string, what: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text[i] === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new DsnError(`${what} in the URL DSN has a "%" that does not start a percent-encoding (%XX)`, URL_PASSWORD_HINT);
      }
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const ch = String.fromCodePoint(text.codePointAt(i)!);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw new DsnError(`${what} in the URL DSN is not UTF-8 once its percent-encodings are decoded`, URL_PASSWORD_HINT);
  }
}

const knownKey = (key: string) => (KV_KEYS as readonly string[]).includes(key) ? key : undefined;

/**
 * libpq's key=value form: `key=value` pairs separated by spaces; a value in
 * single quotes may hold spaces, `\'` and `\\`. Once a password key was seen,
 * an error names nothing written after it: an unquoted password with a space
 * makes its second half look like the next key.
 */
function parseKeyValueDsn(dsn: string): ConnectionSpec {
  const spec: ConnectionSpec = {};
  let i = 0;
  const s = dsn;
  let afterPassword = false;
  let item = 0;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  skipSpace();
  if (i >= s.length) throw new DsnError('the DSN is empty', 'write host=… port=… user=… dbname=…, or a postgres:// URL');
  while (i < s.length) {
    item++;
    const keyStart = i;
    while (i < s.length && /[A-Za-z_]/.test(s[i]!)) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    if (!key || s[i] !== '=') {
      if (afterPassword) throw new DsnError('the DSN is not in key=value form after the value of password', KV_PASSWORD_HINT);
      const named = key && key.length <= 40 ? ` ("${key}" is not followed by "=")` : '';
      throw new DsnError(`the DSN is not in key=value form at its item ${item}${named}`, 'write space-separated key=value pairs, e.g. host=db1 port=5432 dbname=app, or a postgres:// URL');
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
      if (!closed) {
        throw new DsnError(
          afterPassword || key === 'password' ? `the DSN has an unterminated quoted value${afterPassword && key !== 'password' ? ' after the value of password' : ' for "password"'}` : `the DSN has an unterminated quoted value for "${knownKey(key) ?? 'an unknown key'}"`,
          afterPassword || key === 'password' ? KV_PASSWORD_HINT : "close the value with a single quote; write \\' for a quote inside it",
        );
      }
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i];
        i++;
      }
    }
    applyKey(spec, key, value, afterPassword, afterPassword);
    if (key === 'password') afterPassword = true;
    skipSpace();
  }
  return spec;
}

/**
 * Sets one connection setting. `afterPassword`: the key comes after a
 * password in the DSN, so an error adds the quoting hint; `hideKey`: the
 * key's own name may be a piece of a password and must not be echoed.
 */
function applyKey(spec: ConnectionSpec, key: string, value: string, afterPassword: boolean, hideKey = false): void {
  const hint = (h: string) => (afterPassword ? `${h}; if this is part of a password, ${KV_PASSWORD_HINT}` : h);
  switch (key) {
    case 'host':
    case 'hostaddr':
      spec.host = value;
      return;
    case 'port': {
      const port = Number(value);
      if (!/^\d{1,5}$/.test(value) || port < 1 || port > 65535) {
        throw new DsnError('the DSN has a port that is not a port number', hint('use a number from 1 to 65535'));
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
      if (value === '' || !Number.isFinite(secs) || secs < 0) throw new DsnError('the DSN has a connect_timeout that is not a number of seconds', hint('write connect_timeout=10'));
      spec.connect_timeout_ms = secs * 1000;
      return;
    }
    default: {
      if (hideKey || key.length > 40) throw new DsnError('the DSN has an unknown key after the value of password', `${KV_PASSWORD_HINT}; known keys: ${KV_KEYS.join(', ')}`);
      const guess = closest(key, KV_KEYS);
      throw new DsnError(`the DSN has the unknown key "${key}"`, guess ? `did you mean "${guess}"? Known keys: ${KV_KEYS.join(', ')}` : `known keys: ${KV_KEYS.join(', ')}`);
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
