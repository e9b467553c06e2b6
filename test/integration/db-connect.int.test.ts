/**
 * Connection failures become messages that name the problem and the fix,
 * without the password.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionError, connect } from '../../src/db/index.js';
import { runCli } from '../harness/cli.js';
import { sourceServer } from '../harness/servers.js';

describe('connecting', () => {
  it('a refused connection says so and what to check', async () => {
    const err = await connect({ host: '127.0.0.1', port: 1, user: 'postgres', password: 'S3cretPw!', dbname: 'x' }, 'test').catch((e) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'connection_refused' });
    expect(err.message).toBe('cannot connect to postgres@127.0.0.1:1/x: connection refused');
    expect(err.hint).toMatch(/server is running/);
    expect(JSON.stringify({ m: err.message, h: err.hint })).not.toContain('S3cretPw!');
  });

  it('a missing database says so', async () => {
    const s = sourceServer();
    const err = await connect({ host: s.host, port: s.port, user: s.user, dbname: 'no_such_db' }, 'test').catch((e) => e);
    expect(err).toMatchObject({ code: 'unknown_database' });
    expect(err.message).toMatch(/the database does not exist/);
  });

  it('the CLI exits non-zero with the message and no password', async () => {
    const r = await runCli(['engine', 'install', '--db', 'host=127.0.0.1 port=1 user=app password=S3cretPw! dbname=x']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('cannot connect to app@127.0.0.1:1/x: connection refused');
    expect(r.stderr + r.stdout).toMatch(/hint: check that the server is running/);
    expect(r.stderr + r.stdout).not.toContain('S3cretPw!');
  });
});
