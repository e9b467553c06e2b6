/**
 * docs/commands.md, the command reference, is generated from the oclif
 * command classes (summary, usage, arguments, flags with defaults, examples,
 * description), so it cannot drift from `--help`. Regenerate after changing a
 * command with `UPDATE_DOCS=1 npx vitest run test/unit/docs-commands.test.ts`.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import type { Command } from '@oclif/core';
import { describe, expect, it } from 'vitest';
import Apply from '../../src/commands/apply.js';
import Compare from '../../src/commands/compare.js';
import EngineInstall from '../../src/commands/engine/install.js';
import EngineTicker from '../../src/commands/engine/ticker.js';
import EngineWorker from '../../src/commands/engine/worker.js';
import Plan from '../../src/commands/plan.js';
import Resync from '../../src/commands/resync.js';
import Execute from '../../src/commands/execute.js';
import Run from '../../src/commands/run.js';
import Status from '../../src/commands/status.js';
import Switchover from '../../src/commands/switchover.js';
import Validate from '../../src/commands/validate.js';

const DOC = 'docs/commands.md';
/** In the order a user meets them. */
const COMMANDS: Array<[string, unknown]> = [
  ['validate', Validate],
  ['plan', Plan],
  ['apply', Apply],
  ['run', Run],
  ['status', Status],
  ['compare', Compare],
  ['switchover', Switchover],
  ['resync', Resync],
  ['execute', Execute],
  ['engine/install', EngineInstall],
  ['engine/ticker', EngineTicker],
  ['engine/worker', EngineWorker],
];

interface FlagLike {
  description?: string;
  default?: unknown;
  options?: readonly string[];
  required?: boolean;
  type: 'boolean' | 'option';
  multiple?: boolean;
  char?: string;
}

interface ArgLike {
  description?: string;
  required?: boolean;
}

type CommandClass = typeof Command & { args?: Record<string, ArgLike>; flags?: Record<string, FlagLike> };

const example = (e: unknown) => (typeof e === 'string' ? e : (e as { command: string }).command).replace(/<%= config\.bin %>/g, 'pgconvey');

function section(id: string, cmd: CommandClass): string {
  const name = `pgconvey ${id.replace('/', ' ')}`;
  const args = Object.entries(cmd.args ?? {});
  const flags = Object.entries(cmd.flags ?? {}).filter(([, f]) => !(f as { hidden?: boolean }).hidden);
  const usage = [name, ...args.map(([a, x]) => (x.required ? a.toUpperCase() : `[${a.toUpperCase()}]`)), ...(flags.length ? ['[flags]'] : [])].join(' ');
  const out = [`## \`${name}\``, '', cmd.summary ?? '', '', '```', usage, '```', ''];
  if (cmd.description) out.push(cmd.description, '');
  if (args.length) {
    out.push('| argument | |', '| --- | --- |');
    for (const [a, x] of args) out.push(`| \`${a.toUpperCase()}\` | ${x.description ?? ''}${x.required ? '' : ' (optional)'} |`);
    out.push('');
  }
  if (flags.length) {
    out.push('| flag | default | |', '| --- | --- | --- |');
    for (const [f, x] of flags) {
      const value = x.type === 'option' ? (x.options ? `=${x.options.join('\\|')}` : '=VALUE') : '';
      const def = x.default === undefined || x.default === false ? '' : `\`${String(x.default)}\``;
      out.push(`| \`--${f}${value}\`${x.required ? ' (required)' : ''} | ${def} | ${(x.description ?? '').replace(/\|/g, '\\|')} |`);
    }
    out.push('');
  }
  const examples = (cmd.examples ?? []) as unknown[];
  if (examples.length) out.push('```sh', ...examples.map(example), '```', '');
  return out.join('\n');
}

function generate(): string {
  const parts = [
    '# Command reference',
    '',
    '<!-- Generated from src/commands by test/unit/docs-commands.test.ts; do not edit by hand. -->',
    '',
    'Every command reads the desired-state file given as FILE (see [desired-state.md](desired-state.md)),',
    'prints problems as `error CODE: message` with a hint (codes in [errors.md](errors.md)), never prints a',
    'password, and exits 0 on success and 1 on an error unless said otherwise. `pgconvey COMMAND --help`',
    'prints the same text.',
    '',
    ...COMMANDS.map(([id]) => `- [\`pgconvey ${id.replace('/', ' ')}\`](#pgconvey-${id.replace('/', '-')})`),
    '',
  ];
  for (const [id, cmd] of COMMANDS) parts.push(section(id, cmd as CommandClass));
  return `${parts.join('\n').trimEnd()}\n`;
}

describe('docs/commands.md', () => {
  it('is generated from the commands, and lists every command', () => {
    const expected = generate();
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, expected);
    expect(existsSync(DOC), 'run with UPDATE_DOCS=1 once').toBe(true);
    expect(readFileSync(DOC, 'utf8')).toBe(expected);
    const files = (dir: string): string[] =>
      readdirSync(`src/commands/${dir}`, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? (e.name === 'shared' ? [] : files(`${dir}${e.name}/`)) : e.name.endsWith('.ts') && e.name !== 'index.ts' ? [`${dir}${e.name.replace(/\.ts$/, '')}`] : [],
      );
    expect(files('').sort()).toEqual(COMMANDS.map(([id]) => id).sort());
  });
});
