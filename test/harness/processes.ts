/**
 * Child processes of the CLI for tests that kill them: start one, watch its
 * log lines, SIGKILL it, and make sure none outlives the test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll } from 'vitest';

export interface CliProcess {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** Resolves when a log line matches, rejects on timeout or exit. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ChildProcess>();
let registered = false;

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  if (!registered) {
    registered = true;
    afterAll(() => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
  const child = spawn(process.execPath, ['bin/run.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production', NO_COLOR: '1', ...env } });
  running.add(child);
  const lines: string[] = [];
  const watchers = new Set<() => void>();
  let buffer = '';
  const onData = (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    lines.push(...parts);
    for (const w of watchers) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running.delete(child);
      for (const w of watchers) w();
      resolve(code);
    }),
  );
  return {
    child,
    lines,
    exited,
    waitForLine(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        let from = 0;
        const check = () => {
          for (; from < lines.length; from++) {
            if (re.test(lines[from]!)) {
              cleanup();
              return resolve(lines[from]!);
            }
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`process exited before logging ${re}; its output:\n${lines.join('\n')}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${lines.slice(-20).join('\n')}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
