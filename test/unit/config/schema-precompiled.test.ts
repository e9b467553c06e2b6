/**
 * The validator the build writes as code (validatorSource → dist/config/
 * desired-state.validate.cjs, loaded at start instead of compiling the schema)
 * must judge every file exactly as ajv compiling the schema does: the same
 * verdict and the same errors, for every fixture, valid and invalid.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { desiredStateSchema, validatorSource } from '../../../src/config/schema-check.js';

const FILES = [
  ...readdirSync('test/fixtures/desired/invalid').map((f) => join('test/fixtures/desired/invalid', f)),
  'test/fixtures/desired/several-errors.yaml',
  ...readdirSync('plans').filter((f) => f.endsWith('.yaml')).map((f) => join('plans', f)),
];

describe('the precompiled desired-state validator', () => {
  // Inside the project (.pgconvey/ is not in git): the module requires ajv's runtime helpers from node_modules.
  mkdirSync('.pgconvey', { recursive: true });
  const dir = mkdtempSync(join('.pgconvey', 'validator-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'desired-state.validate.cjs');
  writeFileSync(file, validatorSource());
  const pre = createRequire(import.meta.url)(join(process.cwd(), file)) as { default: ValidateFunction; schemaHash: string };
  const compiled = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true }).compile(desiredStateSchema());

  it('carries the hash of the schema it was built from', () => {
    expect(pre.schemaHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each(FILES)('%s: same verdict and errors as ajv compiling the schema', (path) => {
    let data: unknown;
    try {
      data = parse(readFileSync(path, 'utf8'));
    } catch {
      return; // not YAML at all: never reaches the schema
    }
    const a = compiled(data);
    const b = pre.default(data);
    expect(b).toBe(a);
    expect(JSON.stringify(pre.default.errors ?? null)).toBe(JSON.stringify(compiled.errors ?? null));
  });

  it('judges some files invalid and some valid (the comparison is not vacuous)', () => {
    const verdicts = FILES.flatMap((p) => {
      try {
        return [pre.default(parse(readFileSync(p, 'utf8')))];
      } catch {
        return [];
      }
    });
    expect(verdicts).toContain(true);
    expect(verdicts).toContain(false);
  });
});
