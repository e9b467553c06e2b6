/**
 * Asking before a change that needs consent (apply, resync, switchover):
 * only "yes" on a terminal counts; without a terminal the command needs
 * --auto-approve.
 */
import { createInterface } from 'node:readline/promises';

/** Whether stdin can answer; when not, prints `confirmation_needed` with the hint. */
export function canAsk(print: (text: string) => void): boolean {
  if (process.stdin.isTTY) return true;
  print('error confirmation_needed: there is no terminal to confirm on\n    hint: review what it will do, then run again with --auto-approve');
  return false;
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
