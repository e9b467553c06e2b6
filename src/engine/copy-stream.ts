/**
 * One COPY stream from a provider session into a subscriber session, with the
 * provider's bytes forwarded as they arrive: `COPY … TO STDOUT` on the source
 * sends one CopyData message per row, and a frontend's CopyData message for
 * `COPY … FROM STDIN` has the very same framing ('d', length, row), so every
 * run of CopyData messages in a socket read is written to the subscriber's
 * socket as it is (a slice of the read, no copy, no re-framing). Node only
 * walks the 5-byte message headers — to count the rows and to find the end
 * (CopyDone) — where pg-copy-streams took every message apart and framed its
 * chunks again: on 2 cores that JavaScript competed with both backends.
 *
 * Exactness: the bytes are the provider's own; the rows counted here, the
 * provider's `COPY n` and the subscriber's `COPY n` must all agree, or the
 * copy fails. In binary format the provider's first message also carries the
 * file header and its last one is the trailer alone: one message more than
 * rows, which the count allows for (copy-binary.ts says when binary is used). Any other message in the stream (a notice, a parameter status)
 * is dropped, as pg-copy-streams did; an ErrorResponse ends the stream and
 * fails the copy (the subscriber's COPY is cancelled with CopyFail). The
 * subscriber's socket is written only while it accepts: when its buffer is
 * full the provider's socket pauses (the provider's backend then waits), so
 * memory stays flat whatever the table's size.
 *
 * forwardCopies does the same for several tables (a copy batch's chunk) in
 * one statement each way: one simple query of COPY … TO STDOUT statements on
 * the provider, one of COPY … FROM STDIN on the subscriber, each table's rows
 * and CopyDone forwarded in order; the counts are checked per table.
 */
import type pg from 'pg';

/** Rows and row bytes (without the framing) so far: what progress reports. */
export interface CopyTally {
  rows: number;
  bytes: number;
}

interface Socket {
  write(b: Buffer): boolean;
  cork(): void;
  uncork(): void;
  pause(): void;
  resume(): void;
  on(event: 'data', fn: (b: Buffer) => void): void;
  once(event: 'drain', fn: () => void): void;
  removeListener(event: string, fn: (...a: never[]) => void): void;
  listeners(event: 'data'): Array<(b: Buffer) => void>;
  addListener(event: 'data', fn: (b: Buffer) => void): void;
}
interface Connection {
  stream: Socket;
  query(text: string): void;
  sendCopyFail(msg: string): void;
}

const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const COMMAND_COMPLETE = 0x43; // 'C'
const ERROR_RESPONSE = 0x45; // 'E'
/** Messages a backend may send in the middle of a COPY out: skipped (CopyOutResponse, NoticeResponse, ParameterStatus, NotificationResponse). */
const SKIPPED = new Set([0x48, 0x4e, 0x53, 0x41]);
/** Queued bytes written at once when this many have come (else after the reads ready now). */
const FLUSH_BYTES = 256 * 1024;
const COPY_DONE_MESSAGE = Buffer.from([COPY_DONE, 0, 0, 0, 4]);

const rowsOf = (msg: { text?: string } | undefined) => {
  const m = /^COPY (\d+)/.exec(msg?.text ?? '');
  return m ? Number(m[1]) : null;
};

/** A query object (pg "submittable") for the subscriber's `COPY … FROM STDIN`, written to by the forwarder. */
class CopyIn {
  connection: Connection | undefined;
  rows: number | null = null;
  /** Every statement's `COPY n`, in order (a multi-table forward's text has one statement per table). */
  readonly done: Array<number | null> = [];
  readonly ready: Promise<void>;
  readonly finished: Promise<void>;
  failed: unknown;
  private onReady!: () => void;
  private onFinished!: () => void;
  private onFailed!: (err: unknown) => void;
  onError: (err: unknown) => void = () => undefined;
  constructor(readonly text: string) {
    let fail1!: (e: unknown) => void;
    let fail2!: (e: unknown) => void;
    this.ready = new Promise<void>((res, rej) => ((this.onReady = res), (fail1 = rej)));
    this.finished = new Promise<void>((res, rej) => ((this.onFinished = res), (fail2 = rej)));
    this.ready.catch(() => undefined);
    this.finished.catch(() => undefined);
    this.onFailed = (e) => {
      fail1(e);
      fail2(e);
    };
  }
  submit(connection: Connection): void {
    this.connection = connection;
    connection.query(this.text);
  }
  /** pg wraps this when a query_timeout is set (none is, on a copy's sessions). */
  callback(): void {}
  handleCopyInResponse(): void {
    this.onReady();
  }
  handleCommandComplete(msg: { text?: string }): void {
    this.rows = rowsOf(msg);
    this.done.push(this.rows);
  }
  handleReadyForQuery(): void {
    this.callback();
    this.onFinished();
  }
  handleError(err: unknown): void {
    this.callback();
    if (this.failed !== undefined) return;
    this.failed = err;
    this.onFailed(err);
    this.onError(err);
  }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

/**
 * A query object for the provider's `COPY … TO STDOUT`: takes the socket's reads over until CopyDone and
 * forwards the CopyData runs. With several statements (one COPY per table, `tallies` one per table), each
 * CopyDone but the last is forwarded too and the stream goes on: the CommandComplete after it is read
 * here (its `COPY n`), the next CopyOutResponse skipped; the last CopyDone hands the socket back to pg.
 */
class CopyOut {
  private connection: Connection | undefined;
  private pgData: ((b: Buffer) => void) | undefined;
  /** Bytes of the current message still to come (0: a header is next). */
  private remaining = 0;
  /** Whether the current message is forwarded (CopyData) or skipped. */
  private forwarding = false;
  /** A header split between two reads. */
  private partial: Buffer | undefined;
  private detached = false;
  rows: number | null = null;
  /** Every statement's `COPY n` so far, in order. */
  readonly done: Array<number | null> = [];
  /** The statement (table) whose rows come now. */
  index = 0;
  private tally: CopyTally;
  readonly finished: Promise<void>;
  failed: unknown;
  private onFinished!: () => void;
  private onFailed!: (err: unknown) => void;
  onError: (err: unknown) => void = () => undefined;
  constructor(
    readonly text: string,
    private readonly sink: Socket,
    private readonly tallies: readonly CopyTally[],
    private readonly sinkOk: () => boolean,
  ) {
    this.tally = tallies[0]!;
    this.finished = new Promise<void>((res, rej) => ((this.onFinished = res), (this.onFailed = rej)));
    this.finished.catch(() => undefined);
  }
  submit(connection: Connection): void {
    this.connection = connection;
    const stream = connection.stream;
    const listeners = stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`copy: expected one data listener on the provider's connection, found ${listeners.length}`);
    this.pgData = listeners[0]!;
    stream.removeListener('data', this.pgData);
    stream.on('data', this.onData);
    connection.query(this.text);
  }
  callback(): void {}

  private readonly onData = (chunk: Buffer): void => {
    if (this.detached) return;
    if (this.partial) {
      chunk = Buffer.concat([this.partial, chunk]);
      this.partial = undefined;
    }
    let runStart = -1; // start of the run of forwarded bytes in this chunk
    let p = 0;
    const n = chunk.length;
    while (p < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - p);
        if (this.forwarding) {
          if (runStart < 0) runStart = p;
          this.tally.bytes += take;
        } else if (runStart >= 0) {
          this.queue(chunk.subarray(runStart, p));
          runStart = -1;
        }
        this.remaining -= take;
        p += take;
        continue;
      }
      if (n - p < 5) {
        // The header is split between reads: forward what precedes it, keep it for the next read.
        if (runStart >= 0) this.queue(chunk.subarray(runStart, p));
        runStart = -1;
        this.partial = Buffer.from(chunk.subarray(p));
        p = n;
        break;
      }
      const code = chunk[p]!;
      const length = chunk.readUInt32BE(p + 1);
      if (code === COPY_DATA) {
        if (runStart < 0) runStart = p;
        this.forwarding = true;
        this.remaining = length - 4;
        this.tally.rows++;
        p += 5;
        continue;
      }
      if (runStart >= 0) {
        this.queue(chunk.subarray(runStart, p));
        runStart = -1;
      }
      if (code === COPY_DONE && this.index < this.tallies.length - 1) {
        // A table's end, more to come: its CopyDone forwarded, its CommandComplete next.
        this.queue(COPY_DONE_MESSAGE);
        this.index++;
        this.tally = this.tallies[this.index]!;
        this.expectComplete = true;
        p += 5;
        continue;
      }
      if (code === COMMAND_COMPLETE && this.expectComplete) {
        // Read here, whole (kept for the next read when it is split): the table's `COPY n`.
        if (n - p < 1 + length) {
          this.partial = Buffer.from(chunk.subarray(p));
          p = n;
          break;
        }
        this.done.push(rowsOf({ text: chunk.toString('utf8', p + 5, p + length) }));
        this.expectComplete = false;
        p += 1 + length;
        continue;
      }
      if (code === COPY_DONE || code === ERROR_RESPONSE) {
        // The end, or an error: pg reads the rest — CommandComplete and ReadyForQuery, or the error.
        this.detach(code === COPY_DONE ? chunk.subarray(p + 1 + length) : chunk.subarray(p), code === COPY_DONE);
        return;
      }
      if (!SKIPPED.has(code)) {
        // A message no COPY out sends (a protocol this code does not know): the copy fails, pg reads the rest.
        this.handleError(new Error(`copy: unexpected message type 0x${code.toString(16)} in the provider's COPY stream`));
        this.detach(chunk.subarray(p), false);
        return;
      }
      this.forwarding = false;
      this.remaining = length - 4;
      p += 5;
    }
    if (runStart >= 0) this.queue(chunk.subarray(runStart, n));
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.flushScheduled && this.pending.length) {
      // The reads ready now are taken first, then written together (one writev instead of one write per read).
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  };

  /** A CopyDone of a table but the last was read: its CommandComplete comes next. */
  private expectComplete = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private queue(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
  }
  /**
   * Writes what is queued to the subscriber; when its socket is full, the
   * provider's pauses until it drains. Everything queued is whole messages
   * but the last one's head: the subscriber's stream stays in step with the
   * messages whatever happens next.
   */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (!this.pending.length || this.stopped) return;
    const sink = this.sink;
    let ok = true;
    sink.cork();
    for (const b of this.pending) ok = sink.write(b) && ok;
    sink.uncork();
    this.pending = [];
    this.pendingBytes = 0;
    if (!ok && !this.detached) {
      const stream = this.connection!.stream;
      stream.pause();
      sink.once('drain', () => {
        if (this.sinkOk() && !this.detached) stream.resume();
      });
    }
  };

  /** Whether forwarding stopped for good (the subscriber failed): nothing more is written. */
  private stopped = false;

  /**
   * The subscriber failed: stop reading the provider, and end the message
   * the subscriber is in the middle of (what is queued, then zeros for the
   * rest of it), so its session — which ignores CopyData after the error —
   * reads the next statement as one (a ROLLBACK works).
   */
  stop(): void {
    if (this.stopped) return;
    this.connection?.stream.pause();
    this.endMessage();
  }

  /**
   * Writes what is queued and zeros for the rest of the message the
   * subscriber is in the middle of (a provider that died mid-row), then
   * nothing more. Zeros are never valid COPY text (the subscriber fails the
   * row, if it still reads it), and no CopyDone follows: the COPY cannot
   * complete.
   */
  endMessage(): void {
    if (this.stopped) return;
    this.flush();
    this.stopped = true;
    if (this.forwarding && this.remaining > 0 && (this.sink as unknown as { writable?: boolean }).writable !== false) this.sink.write(Buffer.alloc(this.remaining));
    this.remaining = 0;
    this.detached = true;
  }

  /** Hands the provider's socket back to pg with what is left of this read (after writing what is queued: whole messages). */
  private detach(rest: Buffer, done: boolean): void {
    // The last rows and CopyDone in one write (a small table's rows are often all in this read).
    if (done && !this.stopped) this.queue(COPY_DONE_MESSAGE);
    this.flush();
    this.detached = true;
    const stream = this.connection!.stream;
    stream.removeListener('data', this.onData);
    stream.addListener('data', this.pgData!);
    if (rest.length) this.pgData!(rest);
    process.nextTick(() => stream.resume());
  }

  handleCommandComplete(msg: { text?: string }): void {
    this.rows = rowsOf(msg);
    this.done.push(this.rows);
  }
  handleReadyForQuery(): void {
    this.onFinished();
  }
  handleError(err: unknown): void {
    if (this.failed !== undefined) return;
    this.failed = err;
    this.detached = true;
    this.onFailed(err);
    this.onError(err);
  }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/**
 * Runs `copyOut` (a `COPY … TO STDOUT`, text format, or binary with
 * `binary` — then both statements say FORMAT binary) on `source` into
 * `copyIn` (the matching `COPY … FROM STDIN`) on `target`, counting into
 * `tally` as it goes. Resolves when both sides have completed with the same
 * row count; rejects with the first error of either side. On a failure the
 * sessions may be mid-COPY: the caller closes them (as it did with
 * pg-copy-streams), the servers roll back.
 */
export async function forwardCopy(source: pg.Client, target: pg.Client, copyOut: string, copyIn: string, tally: CopyTally, options: { binary?: boolean } = {}): Promise<void> {
  const into = new CopyIn(copyIn);
  (target as unknown as { query(q: unknown): unknown }).query(into);
  await into.ready;
  const targetConnection = into.connection!;
  const sink = targetConnection.stream;
  const from = new CopyOut(copyOut, sink, [tally], () => into.failed === undefined);
  // The subscriber failed mid-stream: stop reading the provider (the caller closes it), end the subscriber's message.
  into.onError = () => from.stop();
  // The provider failed mid-stream: cancel the subscriber's COPY (it rolls back its statement).
  from.onError = (err) => {
    from.endMessage();
    if (into.failed === undefined) targetConnection.sendCopyFail(`the provider's COPY failed: ${(err as Error)?.message ?? String(err)}`);
  };
  (source as unknown as { query(q: unknown): unknown }).query(from);
  await Promise.all([from.finished, into.finished]);
  // Binary: the file header goes out with the first row's message and the trailer in a message of its own — one more message than rows.
  const extra = options.binary ? 1 : 0;
  if (from.rows === null || into.rows === null || from.rows !== into.rows || from.rows + extra !== tally.rows) {
    throw new Error(`copy: row counts disagree (provider sent ${from.rows ?? '?'}, forwarded ${tally.rows - extra}, subscriber loaded ${into.rows ?? '?'})`);
  }
  tally.rows -= extra;
}

/** One table of forwardCopies: its two statements (text format) and its counts. */
export interface CopyItem {
  copyOut: string;
  copyIn: string;
  tally: CopyTally;
}

/** A failure of forwardCopies, with the table (its index in the items) whose copy failed. */
export class ForwardCopiesError extends Error {
  constructor(
    readonly index: number,
    readonly inner: unknown,
  ) {
    super((inner as Error)?.message ?? String(inner));
    this.name = 'ForwardCopiesError';
  }
}

/**
 * Several tables forwarded as forwardCopy does one, in ONE round trip each way: the provider gets all the
 * `COPY … TO STDOUT` statements in one simple query and sends the tables one after the other; the
 * subscriber gets all the `COPY … FROM STDIN` ones in one simple query, followed by each table's rows and
 * CopyDone as they come — its backend reads them in order, each COPY taking the messages up to its
 * CopyDone (sent before its CopyInResponse: a byte stream, read in order). Text format only. Exactness as
 * forwardCopy, per table: the rows counted, the provider's and the subscriber's `COPY n` agree for every
 * table, and each side completed every statement. A failure (either side, any table) rejects with a
 * ForwardCopiesError naming the table; after an error a backend skips the rest of its statements and
 * ignores the copy messages still coming. The caller closes both sessions on a failure, as for forwardCopy.
 */
export async function forwardCopies(source: pg.Client, target: pg.Client, items: readonly CopyItem[]): Promise<void> {
  if (!items.length) return;
  const into = new CopyIn(items.map((i) => i.copyIn).join('; '));
  (target as unknown as { query(q: unknown): unknown }).query(into);
  // Not sent at once (the session busy: never, the caller awaits each statement): the rows wait for its start.
  if (into.connection === undefined) await into.ready.catch(() => undefined);
  const targetConnection = (target as unknown as { connection: Connection }).connection;
  const from = new CopyOut(
    items.map((i) => i.copyOut).join('; '),
    targetConnection.stream,
    items.map((i) => i.tally),
    () => into.failed === undefined,
  );
  let failedAt: number | undefined;
  into.onError = () => {
    failedAt ??= into.done.length;
    from.stop();
  };
  from.onError = (err) => {
    failedAt ??= from.index;
    from.endMessage();
    if (into.failed === undefined) targetConnection.sendCopyFail(`the provider's COPY failed: ${(err as Error)?.message ?? String(err)}`);
  };
  if (into.failed === undefined) (source as unknown as { query(q: unknown): unknown }).query(from);
  try {
    await Promise.all([from.finished, into.finished]);
  } catch (err) {
    throw new ForwardCopiesError(failedAt ?? Math.min(into.done.length, from.index), err);
  }
  for (let i = 0; i < items.length; i++) {
    const sent = from.done[i] ?? null;
    const loaded = into.done[i] ?? null;
    const counted = items[i]!.tally.rows;
    if (sent === null || loaded === null || sent !== loaded || sent !== counted) {
      throw new ForwardCopiesError(i, new Error(`copy: row counts disagree (provider sent ${sent ?? '?'}, forwarded ${counted}, subscriber loaded ${loaded ?? '?'})`));
    }
  }
  if (from.done.length !== items.length || into.done.length !== items.length) {
    throw new ForwardCopiesError(Math.min(from.done.length, into.done.length), new Error(`copy: ${from.done.length} of ${items.length} tables sent, ${into.done.length} loaded`));
  }
}
