/**
 * The built CLI: help, version, and `validate` exit codes and output, and the
 * promise that no password ever reaches the output.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';

const SECRET_LITERAL = 'Lit3ralSecret!';
const SECRET_ENV = 'EnvS3cret_42';

function writeTemp(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvey-e2e-'));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('pgconvey CLI', () => {
  it('--help lists validate; --version prints the version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('validate');
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^pgconvey\/\d+\.\d+\.\d+/);
  });

  it.each(['plans/upgrade-two-node.yaml', 'plans/cascade.yaml'])('validate %s exits 0 with a summary', async (file) => {
    const r = await runCli(['validate', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${file} is valid`);
    expect(r.stdout).toMatch(/queue \w+:/);
  });

  it('validate reports FILE:LINE:COL: error CODE: message lines and exits 1', async () => {
    const r = await runCli(['validate', 'test/fixtures/desired/several-errors.yaml'], { env: { PGCONVEY_TEST_PASSWORD: SECRET_ENV } });
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n').filter((l) => / error /.test(l));
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^test\/fixtures\/desired\/several-errors\.yaml:9:7: error missing_key: /);
    expect(r.stdout).toContain('hint: did you mean "database"?');
    expect(r.stdout).toContain('5 errors, 0 warnings');
  });

  it('validate --json gives a machine-readable result', async () => {
    const r = await runCli(['validate', 'test/fixtures/desired/invalid/two-roots.yaml', '--json']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ valid: false, errors: 1, warnings: 0 });
    expect(doc.diagnostics[0]).toMatchObject({ code: 'duplicate_root', line: 9, col: 33, severity: 'error' });
    const ok = await runCli(['validate', 'plans/upgrade-two-node.yaml', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, declares: { queues: [{ name: 'shop_upgrade' }] } });
  });

  it('a missing file is an error naming the file', async () => {
    const r = await runCli(['validate', 'plans/does-not-exist.yaml']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('file_not_found');
    expect(r.stdout).toContain('plans/does-not-exist.yaml does not exist');
  });

  describe('never prints a password', () => {
    const withErrors = writeTemp(
      'secrets-with-errors.yaml',
      [
        'version: 1',
        'databases:',
        `  old: "host=db1 user=app password=${SECRET_LITERAL} dbnme=shop"`,
        `  new: "postgres://app:${SECRET_LITERAL}@db2:notaport/shop"`,
        '  env: "postgres://app:${PGCONVEY_E2E_PASSWORD}@db3/shop?sslmode=bogus&pasword=x"',
        '  fields:',
        '    host: db4',
        '    password: ${PGCONVEY_E2E_PASSWORD}',
        '    port: ${PGCONVEY_E2E_PASSWORD}',
        'queues:',
        '  q:',
        '    nodes:',
        '      a: { database: old, type: root }',
        '      b: { database: env, type: leaf, provider: a }',
        '      c: { database: fields, type: leaf, provider: a }',
        '    tables: { include: ["public.*"] }',
      ].join('\n'),
    );
    const valid = writeTemp(
      'secrets-valid.yaml',
      [
        'version: 1',
        'databases:',
        `  old: "host=db1 user=app password=${SECRET_LITERAL} dbname=shop"`,
        '  new: "postgres://app:${PGCONVEY_E2E_PASSWORD}@db2/shop"',
        'queues:',
        '  q:',
        '    nodes:',
        '      a: { database: old, type: root }',
        '      b: { database: new, type: leaf, provider: a }',
        '    tables: { include: ["public.*"] }',
      ].join('\n'),
    );

    it.each([
      ['a file with errors, human output', withErrors, [], 1],
      ['a file with errors, JSON output', withErrors, ['--json'], 1],
      ['a valid file, human output', valid, [], 0],
      ['a valid file, JSON output', valid, ['--json'], 0],
    ] as const)('%s', async (_label, file, extra, code) => {
      const r = await runCli(['validate', file, ...extra], { env: { PGCONVEY_E2E_PASSWORD: SECRET_ENV } });
      expect(r.code).toBe(code);
      expect(r.stdout.length).toBeGreaterThan(20);
      for (const secret of [SECRET_LITERAL, SECRET_ENV, encodeURIComponent(SECRET_ENV)]) {
        expect(r.stdout).not.toContain(secret);
        expect(r.stderr).not.toContain(secret);
      }
    });
  });
});
