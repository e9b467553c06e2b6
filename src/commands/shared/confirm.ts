/**
 * Asking before a change that needs consent (apply, resync, switchover):
 * only "yes" on a terminal counts; without a terminal the command needs
 * --auto-approve.
 */
import { createInterface } from 'node:readline/promises';
import { PgconveyError } from '../../kernel/index.js';

/** Throws `confirmation_needed` when stdin cannot answer. */
export function requireTerminal(why = 'there is no terminal to confirm on', hint = 'review what it will do, then run again with --auto-approve'): void {
  if (!process.stdin.isTTY) throw new PgconveyError('confirmation_needed', why, hint);
}

/** Asks `question`; true only for the answer "yes". */
export async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question(`${question} Only 'yes' will be accepted: `)).trim() === 'yes';
  } finally {
    rl.close();
  }
}
