import { describe, expect, it } from 'vitest';
import { DsnError, describeConnection, loadDesiredStateFromText, parseDsn } from '../../../src/config/index.js';
import { maskDsn } from '../../../src/kernel/index.js';
import { diagnosticToJson, renderDesiredStateSummary, renderDiagnostics, summarizeDesiredState } from '../../../src/render/index.js';

describe('DSN parsing', () => {
  it('reads libpq key=value strings with quoting', () => {
    expect(parseDsn("host=db1 port=6432 user=app dbname=shop password='it\\'s x' sslmode=require")).toEqual({
      host: 'db1',
      port: 6432,
      user: 'app',
      dbname: 'shop',
      password: "it's x",
      sslmode: 'require',
    });
  });

  it('reads URLs with encoded passwords and query parameters', () => {
    expect(parseDsn('postgresql://app:p%40ss%20word@db1:6432/shop?sslmode=require&application_name=mover')).toEqual({
      host: 'db1',
      port: 6432,
      user: 'app',
      password: 'p@ss word',
      dbname: 'shop',
      sslmode: 'require',
      application_name: 'mover',
    });
  });

  it.each([
    ['host=db1 dbnme=shop', /unknown key "dbnme"/],
    ['host=db1 port=99999', /not a port number/],
    ["host=db1 password='unterminated", /unterminated quoted value for "password"/],
    ['postgres://u@h:notaport/db', /port that is not a port number/],
    ['postgres://u:p%zz@h/db', /does not start a percent-encoding/],
    ['postgres://u:p%C3@h/db', /not UTF-8/],
    ['postgres://u@h,h2/db', /several hosts/],
    ['just words', /key=value form/],
  ])('rejects %j with a clear message', (dsn, message) => {
    expect(() => parseDsn(dsn)).toThrow(DsnError);
    expect(() => parseDsn(dsn)).toThrow(message);
  });

  it('never puts the password in an error message', () => {
    for (const dsn of ['host=db1 password=S3cr3t! dbnme=x', 'postgres://u:S3cr3t!@h:bad/db', "password='S3cr3t! port=x"]) {
      try {
        parseDsn(dsn);
        expect.unreachable();
      } catch (err) {
        expect((err as Error).message).not.toContain('S3cr3t!');
      }
    }
  });

  it('reads unencoded URL passwords up to the last "@", IPv6 hosts and socket directories', () => {
    expect(parseDsn('postgres://app:a@b:c/d?e#f@db1:6432/shop')).toEqual({ user: 'app', password: 'a@b:c/d?e#f', host: 'db1', port: 6432, dbname: 'shop' });
    expect(parseDsn('postgres://app@[::1]:6432/shop')).toEqual({ user: 'app', host: '::1', port: 6432, dbname: 'shop' });
    expect(parseDsn('postgresql://%2Ftmp%2Fpg/shop')).toEqual({ host: '/tmp/pg', dbname: 'shop' });
    expect(parseDsn('postgresql://app:%C5%BC%C3%B3%C5%82w@db1/shop').password).toBe('żółw');
  });

  it('describes a connection without its password', () => {
    expect(describeConnection({ host: 'db1', port: 5432, user: 'app', password: 'x', dbname: 'shop' })).toBe('app@db1:5432/shop');
  });
});

/*
 * Secrets: for a table of hard passwords, in every form a database entry can
 * take, nothing pgconvey builds from the entry — parse errors, diagnostics
 * (human and JSON), the connection display, the validate summary — holds any
 * 3 consecutive characters of the password. Nothing is scrubbed afterwards
 * here: the messages themselves must be clean.
 */
const HARD_PASSWORDS = [
  'Pw#7f3k@Q9!z zz', // the reported one: a space after a "#" and "@"
  "Qx7 k'L\\9v", // space, quote, backslash
  'pc%zq%41%Kx', // "%" not a percent-encoding, and one that is
  'h#s@t:c/l?q&r=W', // every URL delimiter
  'Żółw🐢Пр9ñ', // unicode, outside the BMP too
  '  Lt3 Tr4  ', // leading and trailing spaces
  "'Qt5'", // quotes at both ends
];

/** The first substring of `secret` of 3 or more characters found in `text`, or null. */
function leakOf(text: string, secret: string): string | null {
  const chars = [...secret];
  for (let i = 0; i + 3 <= chars.length; i++) {
    const piece = chars.slice(i, i + 3).join('');
    if (text.includes(piece)) return piece;
  }
  return null;
}

const kvQuote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Every DSN form of `pw`: [label, dsn, the password it must yield when it parses, or null when it may be refused]. */
function dsnForms(pw: string): Array<[string, string, string | null]> {
  const enc = encodeURIComponent(pw);
  return [
    ['key=value, quoted', `host=db1 port=5432 user=app password=${kvQuote(pw)} dbname=shop`, pw],
    ['key=value, quoted, first', `password=${kvQuote(pw)} host=db1`, pw],
    ['key=value, bare', `host=db1 user=app password=${pw} dbname=shop`, null],
    ['key=value, bare, last', `host=db1 user=app password=${pw}`, null],
    ['key=value, bare, then a bad port', `password=${pw} port=x${pw}`, null],
    ['key=value, bare, unterminated quote', `host=db1 password='${pw}`, null],
    ['URL, percent-encoded', `postgresql://app:${enc}@db1:5432/shop`, pw],
    ['URL, percent-encoded, query', `postgres://app@db1/shop?password=${enc}&sslmode=disable`, pw],
    ['URL, not encoded', `postgres://app:${pw}@db1:5432/shop`, null],
    ['URL, not encoded, bad port', `postgres://app:${pw}@db1:${pw}/shop`, null],
    ['URL, not encoded, query', `postgres://app@db1/shop?password=${pw}`, null],
  ];
}

describe('DSN parsing never echoes any part of a password', () => {
  for (const pw of HARD_PASSWORDS) {
    for (const [label, dsn, expected] of dsnForms(pw)) {
      it(`${label}: ${JSON.stringify(pw)}`, () => {
        let spec: ReturnType<typeof parseDsn> | undefined;
        try {
          spec = parseDsn(dsn);
        } catch (err) {
          expect(err, `a ${(err as Error).constructor.name} instead of a DsnError`).toBeInstanceOf(DsnError);
          const e = err as DsnError;
          expect(e.code).toBe('invalid_dsn');
          expect(leakOf(`${e.message}\n${e.hint}`, pw)).toBeNull();
          expect(e.hint.length).toBeGreaterThan(10);
          expect(expected, `the well-formed ${label} was refused: ${e.message}`).toBeNull();
          return;
        }
        if (expected !== null) expect(spec.password).toBe(expected);
        expect(leakOf(describeConnection(spec), pw)).toBeNull();
      });
    }
  }

  it('maskDsn hides the password of well-formed DSNs', () => {
    for (const pw of HARD_PASSWORDS) {
      for (const [label, dsn, expected] of dsnForms(pw)) {
        if (expected === null && !label.startsWith('URL, not encoded')) continue;
        if (label.includes('bad port') || label.includes('query')) continue;
        expect(leakOf(maskDsn(dsn), pw), `${label} ${JSON.stringify(pw)}: ${maskDsn(dsn)}`).toBeNull();
      }
    }
  });
});

describe('desired-state files never echo any part of a password', () => {
  const yamlString = (s: string) => JSON.stringify(s);
  /** [label, YAML for the database entry "old", environment]: the password arrives in every way a file can give it. */
  function entries(pw: string): Array<[string, string, NodeJS.ProcessEnv]> {
    const env = { PW: pw };
    const out: Array<[string, string, NodeJS.ProcessEnv]> = [
      ['field, in the file', `{ host: db1, user: app, dbname: shop, password: ${yamlString(pw)} }`, {}],
      ['field, ${PW}', '{ host: db1, user: app, dbname: shop, password: "${PW}" }', env],
      ['dsn: key=value with ${PW}', '{ dsn: "host=db1 user=app dbname=shop password=${PW}" }', env],
      ['dsn: key=value with ${PW} last', '"host=db1 user=app password=${PW}"', env],
      ["dsn: key=value with '${PW}'", `{ dsn: "host=db1 user=app password='\${PW}' dbname=shop" }`, env],
      ['dsn: URL with ${PW}', '{ dsn: "postgres://app:${PW}@db1:5432/shop" }', env],
      ['dsn: ${DSN} (URL, encoded)', '"${DSN}"', { DSN: `postgres://app:${encodeURIComponent(pw)}@db1/shop` }],
      ['dsn: ${DSN} (URL, raw)', '"${DSN}"', { DSN: `postgres://app:${pw}@db1/shop` }],
      ['dsn: ${DSN} (key=value, raw)', '"${DSN}"', { DSN: `host=db1 password=${pw} dbname=shop` }],
      ['dsn: ${DSN} (key=value, quoted)', '"${DSN}"', { DSN: `host=db1 password=${kvQuote(pw)} dbname=shop` }],
    ];
    for (const [label, dsn] of dsnForms(pw)) out.push([`dsn in the file: ${label}`, yamlString(dsn), {}]);
    return out;
  }
  for (const pw of HARD_PASSWORDS) {
    for (const [label, entry, env] of entries(pw)) {
      it(`${label}: ${JSON.stringify(pw)}`, () => {
        const text = `version: 1
databases:
  old: ${entry}
  new: "host=db2 dbname=shop"
queues:
  q:
    nodes:
      a: { database: old, type: root }
      b: { database: new, type: leaf, provider: a }
    tables: { include: ["public.*"] }
`;
        const result = loadDesiredStateFromText('x.yaml', text, env);
        const printed = [
          renderDiagnostics(result.diagnostics),
          JSON.stringify(result.diagnostics.map(diagnosticToJson)),
          result.state ? renderDesiredStateSummary(result.state) : '',
          result.state ? JSON.stringify(summarizeDesiredState(result.state)) : '',
          result.state ? result.state.databases.map((d) => d.display).join(' ') : '',
        ].join('\n');
        expect(leakOf(printed, pw), printed).toBeNull();
        for (const d of result.diagnostics) expect(d.code).toMatch(/^[a-z_]+$/);
      });
    }
  }
});

describe('${VAR} in a key=value DSN stands for the value literally', () => {
  for (const pw of HARD_PASSWORDS) {
    it.each([
      ['bare', 'host=db1 password=${PW} dbname=shop'],
      ['bare, last', 'host=db1 dbname=shop password=${PW}'],
      ['quoted', "host=db1 password='${PW}' dbname=shop"],
    ])(`%s: ${JSON.stringify(pw)}`, (_label, dsn) => {
      const text = `version: 1\ndatabases:\n  old: { dsn: ${JSON.stringify(dsn)} }\n  new: ${JSON.stringify(dsn)}\nqueues:\n  q:\n    nodes:\n      a: { database: old, type: root }\n      b: { database: new, type: leaf, provider: a }\n    tables: { include: ["public.*"] }\n`;
      const result = loadDesiredStateFromText('x.yaml', text, { PW: pw });
      expect(result.diagnostics).toEqual([]);
      expect(result.state!.databases.map((d) => [d.connection.password, d.connection.dbname])).toEqual([
        [pw, 'shop'],
        [pw, 'shop'],
      ]);
      expect(result.secrets).toContain(pw);
    });
  }
});
