/**
 * The dependency rules of docs/architecture.md, checked: each src/ module may
 * import only what its header allows. Fails naming the offending import.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Module → the src/ modules and packages it must not import. */
const FORBIDDEN: Record<string, string[]> = {
  kernel: ['config', 'catalog', 'planner', 'executor', 'engine', 'daemons', 'render', 'commands', 'db', 'embedded', 'pg', '@oclif/core', 'chalk'],
  config: ['catalog', 'planner', 'executor', 'engine', 'daemons', 'render', 'commands', 'db', 'embedded', 'pg', '@oclif/core', 'chalk'],
  // Action modules are imported by the planner: engine and pg as types only (checked below).
  actions: ['catalog/introspect', 'planner', 'executor', 'daemons', 'render', 'commands', 'db', 'operations', 'embedded', 'node:fs', 'node:fs/promises', 'node:net', '@oclif/core', 'chalk'],
  planner: ['catalog/introspect', 'executor', 'engine', 'daemons', 'render', 'commands', 'db', 'embedded', 'pg', 'node:fs', 'node:fs/promises', 'node:net', '@oclif/core', 'chalk'],
  catalog: ['planner', 'executor', 'daemons', 'render', 'commands', 'embedded', '@oclif/core', 'chalk'],
  executor: ['render', 'commands', 'daemons', 'embedded', '@oclif/core', 'chalk'],
  engine: ['config', 'catalog', 'planner', 'executor', 'daemons', 'render', 'commands', 'embedded', '@oclif/core', 'chalk'],
  daemons: ['planner', 'executor', 'commands', 'embedded', '@oclif/core'],
  render: ['catalog/introspect', 'executor', 'engine', 'daemons', 'commands', 'db', 'embedded', 'pg', '@oclif/core'],
  db: ['catalog', 'planner', 'executor', 'engine', 'daemons', 'render', 'commands', 'embedded', '@oclif/core', 'chalk'],
  operations: ['planner', 'executor', 'daemons', 'render', 'commands', 'embedded', '@oclif/core', 'chalk'],
  workflow: ['render', 'commands', 'embedded', 'demo', '@oclif/core', 'chalk'],
  commands: ['catalog', 'planner', 'executor', 'engine', 'operations', 'db', 'embedded', 'demo', 'pg'],
  embedded: ['kernel', 'config', 'catalog', 'planner', 'executor', 'engine', 'daemons', 'render', 'commands', 'db', '@oclif/core', 'chalk'],
};

/** Narrow exceptions: module → the imports it may make although its rule forbids their module. */
const ALLOWED: Record<string, string[]> = {
  // The switchover refuses a way back that cannot work with the planner's own pure rule (no I/O in it).
  operations: ['planner/privileges'],
  // The four table states and which of them are a copy in progress (pure data, no I/O): the planner's
  // stale-pin rule (kernel/copy-pins.ts) needs them and the engine is where they are spelled.
  planner: ['engine/table-state'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm), ...text.matchAll(/import\('([^']+)'\)/g)].map((m) => m[1]!);
}

/** `../planner/plan.js` from src/render/x.ts → `planner/plan`; a package stays as is. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return relative('src', join(file, '..', spec)).replace(/\.js$/, '');
}

describe('module boundaries', () => {
  it('every src/ module has a header index.ts', () => {
    for (const mod of Object.keys(FORBIDDEN)) {
      const index = readFileSync(join('src', mod, 'index.ts'), 'utf8');
      expect(index.startsWith('/**'), `src/${mod}/index.ts starts with a header comment`).toBe(true);
      expect(index).toMatch(/Must not/);
    }
  });

  it('no module imports what its header forbids', () => {
    const violations: string[] = [];
    for (const [mod, forbidden] of Object.entries(FORBIDDEN)) {
      for (const file of files(join('src', mod))) {
        for (const spec of importsOf(file)) {
          const t = target(file, spec);
          if ((ALLOWED[mod] ?? []).includes(t)) continue;
          if (forbidden.some((f) => t === f || t.startsWith(`${f}/`))) violations.push(`${file} imports ${spec}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('only commands/ and the demo import workflow/, and src/index.ts exports neither embedded/ nor demo/', () => {
    const users = files('src').filter((f) => importsOf(f).some((spec) => target(f, spec).startsWith('workflow')) && !f.startsWith(join('src', 'workflow')));
    expect(users.filter((f) => !f.startsWith(join('src', 'commands')) && !f.startsWith(join('src', 'demo')) && f !== join('src', 'index.ts'))).toEqual([]);
    expect(importsOf(join('src', 'index.ts')).filter((spec) => /embedded|demo|commands/.test(spec))).toEqual([]);
  });

  it('commands format no error by hand: every failure goes through render/ (renderError)', () => {
    const handMade = files(join('src', 'commands')).flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => ({ line, at: `${f}:${i + 1}` }))
        .filter(({ line }) => /[`'"]error [$a-z_{]|\bhint: /.test(line)),
    );
    expect(handMade.map((h) => `${h.at}: ${h.line.trim()}`)).toEqual([]);
  });

  it('action modules import the engine and pg as types only (the planner imports them and stays free of I/O)', () => {
    const runtime: string[] = [];
    for (const file of files(join('src', 'actions'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^\s*(import|export)\s([^;]*?)from\s+'([^']+)'/gm)) {
        const t = target(file, m[3]!);
        const io = t === 'pg' || t === 'engine' || t.startsWith('engine/');
        if (io && !/^type\s/.test(m[2]!)) runtime.push(`${file} imports ${m[3]} at run time`);
      }
    }
    expect(runtime).toEqual([]);
  });

  it('only kernel/sql-format.ts uses pg-format (identifiers are quoted exactly, always)', () => {
    const users = files('src').filter((f) => importsOf(f).includes('pg-format'));
    expect(users).toEqual([join('src', 'kernel', 'sql-format.ts')]);
  });
});
