/**
 * Docs that must follow the code: the field reference in
 * docs/desired-state.md is generated from the schema, and every diagnostic
 * code pgconvey can print (config, plan checks, command errors) is documented in docs/errors.md.
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

  it('every error and check code pgconvey can print is documented in docs/errors.md', () => {
    const errorsDoc = readFileSync('docs/errors.md', 'utf8');
    const codes = new Set<string>();
    const sources = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : []));
    for (const file of sources('src')) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:code: |report\(|code === |check\(\s*'(?:error|warning)',\s*)'([a-z_]+)'/g)) codes.add(m[1]!);
      for (const m of text.matchAll(/[`'"]error ([a-z_]+):/g)) codes.add(m[1]!);
      for (const m of text.matchAll(/(?:Error|Problem)\('([a-z_]+)'/g)) codes.add(m[1]!);
      for (const m of text.matchAll(/ConnectionError\([^;]*?'([a-z_]+)'\)/gs)) codes.add(m[1]!);
      if (file.startsWith('src/config/')) for (const m of text.matchAll(/'((?:invalid|unqualified|unsupported|file)_[a-z_]+)'/g)) codes.add(m[1]!);
    }
    expect(codes.size).toBeGreaterThan(40);
    const missing = [...codes].filter((c) => !errorsDoc.includes(`\`${c}\``));
    expect(missing).toEqual([]);
  });
});
