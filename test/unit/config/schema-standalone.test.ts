/**
 * The validator the build writes as code (schema-standalone.ts) reports
 * exactly what the schema compiled at run time reports, on every fixture
 * file, valid and invalid; and one made from another schema is not used.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadStandalone } from '../../../src/config/schema-check.js';
import { SCHEMA_OPTIONS, standaloneValidatorSource } from '../../../src/config/schema-standalone.js';

const SCHEMA = readFileSync('schemas/desired-state.schema.json', 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'pgconvey-validator-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fixtures(root: string): string[] {
  return readdirSync(root, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? fixtures(join(root, e.name)) : e.name.endsWith('.yaml') ? [join(root, e.name)] : [],
  );
}

describe('the standalone schema validator', () => {
  const file = join(dir, 'v.cjs');
  writeFileSync(file, standaloneValidatorSource(SCHEMA, true));
  const standalone = loadStandalone(pathToFileURL(file), SCHEMA)!;
  const compiled = new Ajv(SCHEMA_OPTIONS).compile(JSON.parse(SCHEMA) as object);
  const files = [...fixtures('test/fixtures/desired'), ...fixtures('plans')];

  it('is used only when it was made from the schema read', () => {
    expect(standalone).toBeTypeOf('function');
    expect(loadStandalone(pathToFileURL(file), `${SCHEMA} `)).toBeUndefined();
    expect(loadStandalone(pathToFileURL(join(dir, 'missing.cjs')), SCHEMA)).toBeUndefined();
  });

  it(`reports what the compiled schema reports on every fixture`, () => {
    expect(files.length).toBeGreaterThan(40);
    let invalid = 0;
    for (const f of files) {
      let data: unknown;
      try {
        data = parse(readFileSync(f, 'utf8'));
      } catch {
        continue; // not YAML (a fixture of the parser's errors)
      }
      const a = compiled(data);
      const b = standalone(data);
      expect(b, f).toBe(a);
      expect(standalone.errors ?? null, f).toEqual(compiled.errors ?? null);
      if (!a) invalid++;
    }
    expect(invalid).toBeGreaterThan(10);
  });
});
