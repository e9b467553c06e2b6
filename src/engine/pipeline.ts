/**
 * Several statements in ONE round trip on a node-postgres client, through
 * the extended protocol: each statement's Bind and Execute (a Parse for an
 * unnamed one) go out together, followed by a single Sync; the server runs
 * them in order and, at the first error, skips the rest up to the Sync.
 * Used by the apply worker to send a batch's last apply statements with
 * its position and COMMIT (engine/apply.ts), since on this protocol every
 * round trip costs both processes a socket write and a wake-up.
 *
 * Named statements are sent only once the client has parsed them (its own
 * cache of prepared statements says so: `pipelineReady`), so a pipeline
 * never parses a named statement and the client's cache stays true whatever
 * fails; unnamed ones (no parameters) are parsed in place. Inside an
 * explicit transaction, an error leaves it aborted: the caller rolls back,
 * as after any failed statement. Relies on node-postgres' submittable
 * interface (what pg-cursor and pg-query-stream use) and its connection's
 * parse/bind/execute/sync and `parsedStatements`.
 */
import type pg from 'pg';

/** A statement of a pipeline: a named one with text values (already prepared on the client), or an unnamed text without parameters. */
export type PipelinedStatement = { name: string; text: string; values: ReadonlyArray<string | null> } | { text: string };

/** The parts of node-postgres' connection a pipeline uses. */
interface WireConnection {
  parsedStatements: Record<string, string>;
  stream: { cork?: () => void; uncork?: () => void };
  parse(msg: { text: string; name: string; types: unknown[] }): void;
  bind(msg: { portal: string; statement: string; values: ReadonlyArray<string | null>; binary: boolean }): void;
  execute(msg: { portal: string; rows: number }): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

function wire(client: pg.Client): WireConnection {
  return (client as unknown as { connection: WireConnection }).connection;
}

/** Whether the named statement `name` with this text is prepared on the client (a pipeline may then bind it). */
export function pipelineReady(client: pg.Client, name: string, text: string): boolean {
  return wire(client).parsedStatements[name] === text;
}

/** The submittable: sends the statements and a Sync, collects each one's row count, settles at ReadyForQuery or the first error. */
class Pipeline {
  private readonly counts: number[] = [];
  private settled = false;
  readonly done: Promise<number[]>;
  private resolve!: (counts: number[]) => void;
  private reject!: (err: unknown) => void;

  constructor(private readonly statements: readonly PipelinedStatement[]) {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** An error returned here is handed back by the client through handleError (nothing was sent). */
  submit(connection: WireConnection): Error | null {
    for (const s of this.statements) {
      if ('name' in s && connection.parsedStatements[s.name] !== s.text) return new Error(`internal: pipelined statement "${s.name}" is not prepared on this connection`);
    }
    connection.stream.cork?.();
    try {
      for (const s of this.statements) {
        if ('name' in s) {
          connection.bind({ portal: '', statement: s.name, values: s.values, binary: false });
        } else {
          connection.parse({ text: s.text, name: '', types: [] });
          connection.bind({ portal: '', statement: '', values: [], binary: false });
        }
        connection.execute({ portal: '', rows: 0 });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handlePortalSuspended(): void {}
  handleEmptyQuery(): void {
    this.counts.push(0);
  }
  handleCommandComplete(msg: { text?: string }): void {
    // "UPDATE 12", "INSERT 0 3", "DELETE 4", "COMMIT": the last number, when there is one.
    const n = /(\d+)$/.exec(msg.text ?? '');
    this.counts.push(n ? Number(n[1]) : 0);
  }
  handleCopyInResponse(connection: WireConnection): void {
    connection.sendCopyFail('no COPY in a pipeline');
  }
  handleCopyData(): void {}
  handleError(err: unknown): void {
    this.fail(err);
  }
  handleReadyForQuery(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(this.counts);
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }
}

/** Runs the statements in one round trip; resolves with each one's row count, in order, or rejects with the first error. */
export async function runPipeline(client: pg.Client, statements: readonly PipelinedStatement[]): Promise<number[]> {
  if (!statements.length) return [];
  const p = new Pipeline(statements);
  (client as unknown as { query(s: unknown): unknown }).query(p);
  return p.done;
}
