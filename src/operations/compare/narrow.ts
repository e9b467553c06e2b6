/**
 * Narrowing: compares key ranges of one table inside the two snapshots; a
 * range that differs is split in the provider's key order (into
 * SPLIT_FANOUT pieces) until it is small, then read key by key and named:
 * the keys missing, extra or changed on the subscriber.
 */
import { canonicalKeys, keyAtOffset, rowDigests, sortKeys, summarizeRange, type KeyRange, type KeyTuple, type RangeSummary, type TableShape } from './hashing.js';
import type { Settings } from './options.js';
import type { DifferingRange, KeyValues } from './report.js';
import type { Connections } from './sessions.js';

const SPLIT_FANOUT = 10;

function sameSummary(a: RangeSummary, b: RangeSummary): boolean {
  return a.rows === b.rows && a.checksum === b.checksum;
}

/**
 * Compares key ranges of one table inside the two snapshots; a range that
 * differs is split in the provider's key order until it is small, then read
 * key by key.
 */
export class RangeComparer {
  providerRows = 0;
  subscriberRows = 0;
  readonly differing: DifferingRange[] = [];
  moreDiffering = 0;

  constructor(
    private readonly conns: Connections,
    private readonly shapes: { provider: TableShape; subscriber: TableShape },
    private readonly keyColumns: string[],
    private readonly opts: Settings,
  ) {}

  async compareChunk(range: KeyRange): Promise<void> {
    const [p, s] = await this.summarize(range);
    this.providerRows += p.rows;
    this.subscriberRows += s.rows;
    if (sameSummary(p, s)) return;
    if (this.differing.length >= this.opts.maxRanges) this.moreDiffering++;
    else await this.narrow(range, p, s);
  }

  private summarize(range: KeyRange): Promise<[RangeSummary, RangeSummary]> {
    return Promise.all([summarizeRange(this.conns.provider, this.shapes.provider, range), summarizeRange(this.conns.subscriber, this.shapes.subscriber, range)]);
  }

  private async narrow(range: KeyRange, p: RangeSummary, s: RangeSummary): Promise<void> {
    if (p.rows <= this.opts.narrowRows) {
      if (this.differing.length >= this.opts.maxRanges) this.moreDiffering++;
      else this.differing.push(await this.diffRows(range, s.rows));
      return;
    }
    const step = Math.ceil(p.rows / SPLIT_FANOUT);
    const cuts: KeyTuple[] = [];
    for (let offset = step - 1; offset < p.rows - 1; offset += step) {
      const key = await keyAtOffset(this.conns.provider, this.shapes.provider, range, offset);
      if (key) cuts.push(key);
    }
    const bounds = [range.after, ...cuts, range.through];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const piece = { after: bounds[i]!, through: bounds[i + 1]! };
      const [pp, sp] = await this.summarize(piece);
      if (!sameSummary(pp, sp)) await this.narrow(piece, pp, sp);
    }
  }

  /** Reads key and row digest of a small range on both sides and names the keys that differ. */
  private async diffRows(range: KeyRange, subscriberRows: number): Promise<DifferingRange> {
    const subscriberLimit = this.opts.narrowRows * 100;
    const [pRows, sRead] = await Promise.all([
      rowDigests(this.conns.provider, this.shapes.provider, range, this.opts.narrowRows),
      rowDigests(this.conns.subscriber, this.shapes.subscriber, range, subscriberLimit),
    ]);
    // The subscriber's keys as the provider prints the same typed values, so that both are matched in one form.
    const sKeys = await canonicalKeys(this.conns.provider, this.shapes.provider, sRead.map((r) => r.key));
    const sRows = sRead.map((r, i) => ({ key: sKeys[i]!, digest: r.digest }));
    const provider = new Map(pRows.map((r) => [JSON.stringify(r.key), r.digest]));
    const matched = new Set<string>();
    const extra: KeyTuple[] = [];
    const changed: KeyTuple[] = [];
    for (const r of sRows) {
      const id = JSON.stringify(r.key);
      const digest = provider.get(id);
      if (digest === undefined || matched.has(id)) extra.push(r.key);
      else {
        matched.add(id);
        if (digest !== r.digest) changed.push(r.key);
      }
    }
    // Rows past the subscriber's limit count as extra; which provider keys are missing is then unknown.
    const unread = subscriberRows - sRows.length;
    const missing = unread > 0 ? [] : pRows.filter((r) => !matched.has(JSON.stringify(r.key))).map((r) => r.key);
    // Each list is in key order already (both sides were read in it); the range runs from the first to the last of them.
    const ends = await sortKeys(this.conns.provider, this.shapes.provider, [missing, extra, changed].flatMap((keys) => (keys.length ? [keys[0]!, keys[keys.length - 1]!] : [])));
    const first = ends[0] ?? range.after ?? [];
    const last = ends[ends.length - 1] ?? range.through ?? [];
    const listed = (keys: KeyTuple[]) => keys.slice(0, this.opts.listLimit).map((k) => this.keyValues(k));
    return {
      from: this.keyValues(first),
      to: this.keyValues(last),
      providerRows: pRows.length,
      subscriberRows,
      missing: listed(missing),
      extra: listed(extra),
      changed: listed(changed),
      missingCount: missing.length,
      extraCount: extra.length + unread,
      changedCount: changed.length,
    };
  }

  private keyValues(key: KeyTuple): KeyValues {
    return Object.fromEntries(key.map((v, i) => [this.keyColumns[i]!, v]));
  }
}
