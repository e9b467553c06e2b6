/**
 * Docs that must follow the code: the field reference in
 * docs/desired-state.md is generated from the schema, and every diagnostic
 * code the config module can emit is documented in docs/errors.md.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderSchemaReference } from '../../src/render/index.js';

const DOC = 'docs/desired-state.md';
const BEGIN = '<!-- BEGIN GENERATED FIELD REFERENCE -->';
const END = '<!-- END GENERATED FIELD REFERENCE -->';

describe('docs', () => {
  it('docs/desired-state.md has the field reference generated from the schema', () => {
    const schema = JSON.parse(readFileSync('schemas/desired-state.schema.json', 'utf8'));
    const expected = `${BEGIN}\n${renderSchemaReference(schema)}\n${END}`;
    const doc = readFileSync(DOC, 'utf8');
    const current = doc.slice(doc.indexOf(BEGIN), doc.indexOf(END) + END.length);
    if (process.env.UPDATE_DOCS === '1' && current !== expected) {
      writeFileSync(DOC, doc.replace(current, expected));
      return;
    }
    expect(current).toBe(expected);
  });

  it('every diagnostic code of src/config is documented in docs/errors.md', () => {
    const errorsDoc = readFileSync('docs/errors.md', 'utf8');
    const codes = new Set<string>();
    for (const file of readdirSync('src/config')) {
      const text = readFileSync(`src/config/${file}`, 'utf8');
      for (const m of text.matchAll(/(?:code: |report\(|code === )'([a-z_]+)'/g)) codes.add(m[1]!);
      for (const m of text.matchAll(/'((?:invalid|unqualified|unsupported|file)_[a-z_]+)'/g)) codes.add(m[1]!);
    }
    expect(codes.size).toBeGreaterThan(25);
    const missing = [...codes].filter((c) => !errorsDoc.includes(`\`${c}\``));
    expect(missing).toEqual([]);
  });
});
