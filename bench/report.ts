/**
 * What every benchmark script shares: finding the command-line tools it
 * compares with, naming the commit it measured, appending its section to
 * docs/benchmarks.md, and exiting non-zero with the stack on failure.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';

/** The absolute path of a tool, or an error naming the package that brings it. */
export function requireTool(tool: string, install: string): string {
  try {
    return execFileSync('which', [tool], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${tool} is not installed: apt-get update && apt-get install -y ${install}`);
  }
}

export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Prints a report section and appends it to docs/benchmarks.md. */
export function publish(report: string): void {
  const file = 'docs/benchmarks.md';
  if (!existsSync(file)) writeFileSync(file, '# Benchmarks\n\nNumbers written by the scripts in bench/; newest last.\n');
  appendFileSync(file, `\n${report}`);
  process.stdout.write(`\n${report}\n`);
}

/** Runs a script's main, exiting 1 with the stack when it fails. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
