import { describe, expect, it } from 'vitest';
import { DsnError, describeConnection, parseDsn } from '../../../src/config/index.js';

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
    ["host=db1 password='unterminated", /unterminated quoted value/],
    ['postgres://u@h:notaport/db', /not a valid URL/],
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

  it('describes a connection without its password', () => {
    expect(describeConnection({ host: 'db1', port: 5432, user: 'app', password: 'x', dbname: 'shop' })).toBe('app@db1:5432/shop');
  });
});
