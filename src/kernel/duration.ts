/**
 * Durations with units, as written in the desired-state file: `500ms`, `2s`,
 * `1.5s`, `1min`, `2h`. A bare number is not accepted, so a reader never has
 * to guess the unit.
 */

const UNIT_MS = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 } as const;

/** The pattern the JSON schema uses too; keep them in step (a unit test checks). */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|min|h)$';
const DURATION_RE = new RegExp(DURATION_PATTERN);

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  const unit = m[2] as keyof typeof UNIT_MS;
  return Math.round(Number.parseFloat(text) * UNIT_MS[unit]);
}

/** A short human form of a millisecond count: `250ms`, `2s`, `1.5min`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trim(ms / 1000)}s`;
  if (ms < 3_600_000) return `${trim(ms / 60_000)}min`;
  return `${trim(ms / 3_600_000)}h`;
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
