/**
 * txid snapshots as text (`xmin:xmax:xip1,xip2,…`, the output of
 * txid_current_snapshot()), and the arithmetic a batch needs.
 */

export interface TxidSnapshot {
  xmin: bigint;
  xmax: bigint;
  /** Transactions in progress when the snapshot was taken. */
  xip: bigint[];
}

export function parseSnapshot(text: string): TxidSnapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!m) throw new Error(`not a txid snapshot: "${text}"`);
  return {
    xmin: BigInt(m[1]!),
    xmax: BigInt(m[2]!),
    xip: m[3] ? m[3].split(',').map((x) => BigInt(x)) : [],
  };
}

/**
 * Transactions that were running at `start` and have finished by `end`: their
 * events belong to the batch (start, end] although their ids are below
 * start's xmax. (Ones that aborted have no visible events.)
 */
export function lateTransactions(start: TxidSnapshot, end: TxidSnapshot): bigint[] {
  const stillRunning = new Set(end.xip.map(String));
  return start.xip.filter((x) => !stillRunning.has(String(x)));
}

/**
 * Whether every transaction visible in `inner` is visible in `outer` (a
 * snapshot taken after `inner` always is). Transactions that aborted cannot
 * be told apart here, so they count as visible: the answer errs on "no".
 */
export function snapshotSees(outer: TxidSnapshot, inner: TxidSnapshot): boolean {
  if (outer.xmax < inner.xmax) return false;
  const runningInInner = new Set(inner.xip.map(String));
  // Running in `outer` yet below inner's xmax: visible in `inner` unless it was running there too.
  return outer.xip.every((x) => x >= inner.xmax || runningInInner.has(String(x)));
}
