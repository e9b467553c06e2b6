/**
 * The engine's state is the engine's: no file under src/ outside src/engine/
 * has SQL naming a `pgconvey.` table or function (the others call the
 * engine's typed API: engine/api.ts, queue-state.ts, subscription-state.ts,
 * engine-version.ts, fence.ts, process-state.ts, reverse.ts). Comments may name them.
 * Fails naming each file and line.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Files exempt from the rule (a prefix of a path under src/): none. */
const EXEMPT_FILES: readonly string[] = [];

/** Single lines exempt (a line of `file` containing `contains`): none. */
const EXEMPT_LINES: ReadonlyArray<{ file: string; contains: string }> = [];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The text with comments blanked (line numbers kept): `/* … *\/` blocks and `//` to the end of the line outside strings. */
function withoutComments(text: string): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end === -1 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop - 1;
    } else if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      out += ' '.repeat(stop - i);
      i = stop - 1;
    } else {
      if (c === "'" || c === '"' || c === '`') quote = c;
      out += c;
    }
  }
  return out;
}

/** `pgconvey.` followed by a name (quoted or not): a table, sequence, type or function of the engine's schema — not a file name such as `pgconvey.yaml`. */
const ENGINE_OBJECT = /\bpgconvey\s*\.\s*(?!(?:ya?ml|json)\b)(?:"|[a-z_])/i;

/** The lines of a file's text (1-based, with their text) that name an engine object outside comments. */
function engineSqlLines(text: string): Array<{ line: number; text: string }> {
  const lines = withoutComments(text).split('\n');
  return lines.flatMap((l, i) => (ENGINE_OBJECT.test(l) ? [{ line: i + 1, text: l.trim() }] : []));
}

describe('engine boundary', () => {
  it('the check sees SQL in strings and ignores comments', () => {
    const sample = ["// reads pgconvey.queue", "/* pgconvey.tick */ const a = 1;", "const q = 'SELECT * FROM pgconvey.subscription';", 'const r = `x ${y} pgconvey."tick"`;', "const f = 'pgconvey.yaml';"].join('\n');
    expect(engineSqlLines(sample).map((l) => l.line)).toEqual([3, 4]);
  });

  it('no file outside src/engine/ has SQL on pgconvey.*', () => {
    const violations: string[] = [];
    for (const path of files('src')) {
      const file = relative('.', path).split(sep).join('/');
      if (file.startsWith('src/engine/')) continue;
      if (EXEMPT_FILES.some((p) => file === p || file.startsWith(p))) continue;
      for (const l of engineSqlLines(readFileSync(path, 'utf8'))) {
        if (EXEMPT_LINES.some((e) => e.file === file && l.text.includes(e.contains))) continue;
        violations.push(`${file}:${l.line}: ${l.text}`);
      }
    }
    expect(violations).toEqual([]);
  });
});
