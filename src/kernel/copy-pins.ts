/**
 * Copy pins: the provider consumers (`copy:<consumer>:<generation>:<table>`,
 * the table shown with `displayName`, so `"a.b".c` and `a."b.c"` differ)
 * that hold a queue's events from a copy's tick until the worker has merged
 * the copy. Pins of older engines (`copy:<consumer>:<schema>.<table>`, and
 * unquoted names with a generation) are still recognised: only the owner and
 * the generation are ever read from a pin's name, never the table. One pin per copy attempt (the generation), recorded in the
 * subscriber's table row. The rule of which pins are still needed lives here,
 * shared by the worker (which drops the others on every batch), `plan` and
 * `status` (which report them). Pure: no I/O.
 */

import { displayName } from './qualified-name.js';

const PREFIX = 'copy:';

/** The pin of one copy attempt (for plain lower-case names the same text as pins have always had). */
export function copyPinName(consumer: string, generation: string | number | bigint, schema: string, table: string): string {
  return `${PREFIX}${consumer}:${generation}:${displayName({ schema, name: table })}`;
}

export function isCopyPin(consumerName: string): boolean {
  return consumerName.startsWith(PREFIX);
}

/** The subscription (node name) a pin belongs to: node names contain no `:`. */
export function copyPinOwner(pin: string): string | null {
  if (!isCopyPin(pin)) return null;
  const end = pin.indexOf(':', PREFIX.length);
  return end === -1 ? null : pin.slice(PREFIX.length, end);
}

/** The generation in a pin's name (null for a pin of an engine before version 7). */
export function copyPinGeneration(pin: string): bigint | null {
  const owner = copyPinOwner(pin);
  if (owner === null) return null;
  const m = /^(\d+):/.exec(pin.slice(PREFIX.length + owner.length + 1));
  return m ? BigInt(m[1]!) : null;
}

/** A subscriber table row as the pin rule needs it (`S`: the engine's table states; the kernel does not know them). */
export interface PinHolder<S extends string = string> {
  state: S;
  copyPin: string | null;
  copyGeneration: string | null;
}

/**
 * The pins among `pins` that no copy needs: a pin is needed while a table row
 * of its subscription names it and is `copying` or `catching-up`; or when its
 * generation is newer than every generation the rows show (a copy that began
 * after the rows were read). `subscriptions` maps a subscription's node name
 * to its rows; a pin of a node not in the map is stale (its node is gone).
 * Whoever reads the pins must read them BEFORE the rows, so that a pin
 * registered in between is not among them. `copyInProgress` says which
 * states are a copy under way (the engine's isCopyInProgress).
 */
export function stalePins<S extends string>(pins: readonly string[], subscriptions: ReadonlyMap<string, readonly PinHolder<S>[]>, copyInProgress: (state: S) => boolean): string[] {
  return pins.filter((pin) => {
    const owner = copyPinOwner(pin);
    if (owner === null) return false;
    const rows = subscriptions.get(owner);
    if (!rows) return true;
    if (rows.some((r) => r.copyPin === pin && copyInProgress(r.state))) return false;
    const generation = copyPinGeneration(pin);
    const newest = rows.reduce((m, r) => (r.copyGeneration !== null && BigInt(r.copyGeneration) > m ? BigInt(r.copyGeneration) : m), 0n);
    return !(generation !== null && generation > newest);
  });
}
