/**
 * The progress lines of `apply`: `  + ID … done (N ms)` per action, its
 * start written when it starts and its end on the same line — unless
 * something else is written meanwhile (an action running in the background,
 * e.g. copy_schema, while the next ones go on): the open line then ends with
 * `running`, and the action's end comes later on a line of its own, with its
 * id again. So lines never mix, whatever order the hooks fire in. Returns the
 * text to write; holds only which line is open.
 */
import type { Action } from '../actions/index.js';

type Shown = Pick<Action, 'id' | 'change'>;

function head(a: Shown): string {
  return `  ${a.change === 'delete' ? '-' : a.change === 'update' ? '~' : '+'} ${a.id} … `;
}

export class ApplyProgress {
  private open: string | null = null;

  start(a: Shown): string {
    const text = `${this.close()}${head(a)}`;
    this.open = a.id;
    return text;
  }

  done(a: Shown, ms: number): string {
    // A group's actions share its time: a fraction of a millisecond each, shown whole.
    return this.end(a, `done (${Math.round(ms)} ms)`);
  }

  failed(a: Shown): string {
    return this.end(a, 'failed');
  }

  private end(a: Shown, what: string): string {
    if (this.open === a.id) {
      this.open = null;
      return `${what}\n`;
    }
    return `${this.close()}${head(a)}${what}\n`;
  }

  /** Ends the open line, if any: its action is still running. */
  private close(): string {
    if (this.open === null) return '';
    this.open = null;
    return 'running\n';
  }
}
