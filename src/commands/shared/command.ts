/**
 * The base of every pgconvey command: the one place that prints a failure
 * and sets the exit code. A command throws (a PgconveyError, or whatever its
 * library call threw); `catch` renders it with render/'s renderError — or as
 * JSON when the command's --json is on — and exits 1. oclif's own exits pass
 * through unchanged: `this.exit(n)` and its usage errors (exit 2).
 */
import { Command } from '@oclif/core';
import type { WorkflowOptions } from '../../workflow/index.js';
import { errorToJson, renderError } from '../../render/index.js';
import { guardOutput } from './output-guard.js';

export abstract class PgconveyCommand extends Command {
  /** Set once flags are parsed, by a command whose `--json` is on: its errors print as JSON. */
  protected json = false;

  /** What the workflow calls need from the CLI: the file's passwords are scrubbed from stdout and stderr as soon as they are known. */
  protected readonly workflow: WorkflowOptions = { onSecrets: (secrets) => guardOutput(secrets) };

  /** Prints a line on stdout (every known password scrubbed by the output guard). */
  protected print(text: string): void {
    process.stdout.write(`${text}\n`);
  }

  /** Where a failure is printed: stdout, with the command's output, unless a command says otherwise. */
  protected errorStream(_err: unknown): NodeJS.WritableStream {
    return process.stdout;
  }

  /** The JSON form of a failure (under --json). */
  protected errorJson(err: unknown): unknown {
    return errorToJson(err);
  }

  override async catch(err: Error & { oclif?: { exit?: number } }): Promise<unknown> {
    if (err?.oclif?.exit !== undefined) return super.catch(err); // this.exit(n), and oclif's usage errors (exit 2)
    const text = this.json ? JSON.stringify(this.errorJson(err), null, 2) : renderError(err);
    this.errorStream(err).write(`${text}\n`);
    return this.exit(1);
  }
}
