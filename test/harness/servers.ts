/**
 * What the test run's servers are, as provided by global-setup: the first
 * major in PGTEST_MAJORS is the source (old) server, the last the target (new).
 */
import { inject } from 'vitest';

export interface ServerInfo {
  major: number;
  version: string;
  host: string;
  port: number;
  user: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgServers: ServerInfo[];
  }
}

export function servers(): ServerInfo[] {
  return inject('pgServers');
}

/** The old server a database is upgraded from (first of PGTEST_MAJORS). */
export function sourceServer(): ServerInfo {
  return servers()[0]!;
}

/** The new server a database is upgraded to (last of PGTEST_MAJORS). */
export function targetServer(): ServerInfo {
  const all = servers();
  return all[all.length - 1]!;
}

export function parseMajors(text: string | undefined): number[] {
  const majors = (text ?? '12,17')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (majors.length === 0 || majors.some((m) => !Number.isInteger(m) || m < 10)) {
    throw new Error(`PGTEST_MAJORS must list PostgreSQL majors such as 12,17; got "${text}"`);
  }
  return majors;
}
