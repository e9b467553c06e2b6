/**
 * Saved plans (`plan --out`): the plan together with what it was made from —
 * a fingerprint of the desired state (without passwords), and for every
 * database what identifies it and a fingerprint of the parts of its catalog
 * the planner reads, and a fingerprint of the plan itself. A saved plan is a
 * contract, not a script: `verifySavedPlan` compares it with a FRESH plan made
 * from the same file and the live catalogs, and it may be applied only when
 * the two are equal, action by action and parameter by parameter (canonical
 * JSON); the fresh plan is then what runs. Refused as tampered when the saved
 * plan does not match its own fingerprint, as made for other databases, or as
 * stale when the file, a catalog, the engine version or content (installed
 * or installed by this pgconvey) — or anything else that makes the fresh plan
 * differ — changed. Pure: no I/O, no secrets.
 */
import { createHash } from 'node:crypto';
import type { NodeCatalog } from '../catalog/model.js';
import type { DesiredState } from '../config/index.js';
import type { Plan } from './plan.js';

export const SAVED_PLAN_FORMAT = 'pgconvey-plan';
export const SAVED_PLAN_VERSION = 2;

export interface SavedDatabase {
  name: string;
  /** `user@host:port/dbname`, never a password. */
  display: string;
  serverVersion: string;
  databaseOid: number;
  systemIdentifier: string | null;
  /** sha256 of the plan-relevant catalog (see `fingerprintCatalog`). */
  fingerprint: string;
}

export interface SavedPlan {
  format: typeof SAVED_PLAN_FORMAT;
  version: number;
  createdAt: string;
  /** The desired-state file, as given to `plan`. */
  file: string;
  /** sha256 of the normalised desired state, passwords left out. */
  stateFingerprint: string;
  engineVersion: number;
  /** The content version of the engine this pgconvey installs (sha256 of its engine SQL). */
  engineContent: string | null;
  databases: SavedDatabase[];
  plan: Plan;
  /** sha256 of `plan` in canonical JSON: an edit of the file that forgets it shows as plan_tampered. Not a signature — the fresh re-plan is the guard. */
  planFingerprint: string;
}

export type SavedPlanProblem =
  | { code: 'plan_for_other_databases'; message: string; hint: string }
  | { code: 'plan_stale'; message: string; hint: string }
  | { code: 'plan_tampered'; message: string; hint: string };

export function makeSavedPlan(input: { state: DesiredState; catalogs: Readonly<Record<string, NodeCatalog>>; engineVersion: number; engineContent?: string; plan: Plan; now: Date }): SavedPlan {
  return {
    format: SAVED_PLAN_FORMAT,
    version: SAVED_PLAN_VERSION,
    createdAt: input.now.toISOString(),
    file: input.state.file,
    stateFingerprint: fingerprintState(input.state),
    engineVersion: input.engineVersion,
    engineContent: input.engineContent ?? null,
    databases: input.state.databases.map((d) => {
      const c = input.catalogs[d.name]!;
      return {
        name: d.name,
        display: d.display,
        serverVersion: c.serverVersion,
        databaseOid: c.identity.databaseOid,
        systemIdentifier: c.identity.systemIdentifier,
        fingerprint: fingerprintCatalog(c),
      };
    }),
    plan: input.plan,
    planFingerprint: fingerprintPlan(input.plan),
  };
}

/** sha256 of a plan's checks and actions (ids, kinds, databases, parameters, reasons, order) in canonical JSON. */
export function fingerprintPlan(plan: Plan): string {
  return sha256(plan);
}

/**
 * Why the saved plan must not be applied to these databases now, or null when
 * it may: `fresh` is the plan made now from the same file and these catalogs,
 * and it must equal the saved one.
 */
export function verifySavedPlan(saved: SavedPlan, state: DesiredState, catalogs: Readonly<Record<string, NodeCatalog>>, engineVersion: number, fresh: Plan, engineContent?: string): SavedPlanProblem | null {
  if (typeof saved.planFingerprint !== 'string' || fingerprintPlan(saved.plan) !== saved.planFingerprint) {
    return {
      code: 'plan_tampered',
      message: `the saved plan was changed after it was made (${saved.createdAt}): its actions do not match its fingerprint`,
      hint: 'do not edit saved plans; make a new one and review it: pgconvey plan FILE --out PLANFILE',
    };
  }
  const foreign: string[] = [];
  const names = new Set(state.databases.map((d) => d.name));
  for (const d of saved.databases) if (!names.has(d.name)) foreign.push(`database "${d.name}" is not in the file any more`);
  for (const d of state.databases) {
    const s = saved.databases.find((x) => x.name === d.name);
    const c = catalogs[d.name]!;
    if (!s) foreign.push(`database "${d.name}" was not in the file when the plan was made`);
    else if (s.display !== d.display) foreign.push(`database "${d.name}" is ${d.display}, the plan was made for ${s.display}`);
    else if (s.databaseOid !== c.identity.databaseOid || (s.systemIdentifier && c.identity.systemIdentifier && s.systemIdentifier !== c.identity.systemIdentifier)) {
      foreign.push(`database "${d.name}" at ${d.display} is not the one the plan was made for (it was dropped and created again, or another server answers there)`);
    }
  }
  if (foreign.length) {
    return { code: 'plan_for_other_databases', message: `the saved plan was made for other databases: ${foreign.join('; ')}`, hint: 'make a new plan for these databases: pgconvey plan FILE --out PLANFILE' };
  }
  const changed: string[] = [];
  if (saved.engineVersion !== engineVersion) changed.push(`it was made for engine version ${saved.engineVersion}, this pgconvey installs ${engineVersion}`);
  else if (engineContent !== undefined && (saved.engineContent ?? null) !== engineContent) {
    changed.push(`it was made by a pgconvey whose engine content is ${saved.engineContent ? saved.engineContent.slice(0, 12) : 'not recorded'}, this one installs ${engineContent.slice(0, 12)}`);
  }
  if (saved.stateFingerprint !== fingerprintState(state)) changed.push(`${state.file} changed`);
  for (const d of saved.databases) {
    if (fingerprintCatalog(catalogs[d.name]!) !== d.fingerprint) changed.push(`the catalog of database "${d.name}" changed`);
  }
  if (changed.length) {
    return { code: 'plan_stale', message: `the saved plan is stale: ${changed.join('; ')} since it was made (${saved.createdAt})`, hint: 'review a new plan: pgconvey plan FILE --out PLANFILE, then apply that' };
  }
  const difference = planDifference(saved.plan, fresh);
  if (difference) {
    return {
      code: 'plan_stale',
      message: `the saved plan is not what a plan made now from ${state.file} and these databases would do: ${difference} (the tools found here differ, e.g. another pg_dump, it was made by another pgconvey, or it was edited)`,
      hint: 'review a new plan: pgconvey plan FILE --out PLANFILE, then apply that',
    };
  }
  return null;
}

/** The first difference between two plans, in words, or null when they are equal in canonical JSON. */
export function planDifference(saved: Plan, fresh: Plan): string | null {
  if (canonicalJson(saved) === canonicalJson(fresh)) return null;
  const ids = (p: Plan) => (Array.isArray(p.actions) ? p.actions.map((a) => String(a?.id)) : []);
  const [a, b] = [ids(saved), ids(fresh)];
  for (const id of a) if (!b.includes(id)) return `the saved action ${id} would not be planned now`;
  for (const id of b) if (!a.includes(id)) return `the action ${id} would be planned now but is not in the saved plan`;
  for (const [i, id] of a.entries()) {
    if (b[i] !== id) return `the actions are in another order (at ${id})`;
    if (canonicalJson(saved.actions[i]) !== canonicalJson(fresh.actions[i])) return `the action ${id} has other parameters`;
  }
  return 'the checks or the summary differ';
}

/**
 * sha256 of what the planner reads from a catalog, leaving out what moves on
 * its own (row estimates, sizes, tick positions, copy states), so a plan
 * stays valid while replication runs but not after a schema or engine change.
 */
export function fingerprintCatalog(c: NodeCatalog): string {
  return sha256({
    serverVersionNum: c.serverVersionNum,
    database: c.database,
    privileges: c.privileges,
    tables: c.tables.map(({ estimatedRows: _rows, bytes: _bytes, ...t }) => t),
    sequences: c.sequences,
    // Roles are the server's, shared by every database on it: only those owning a table here count (a
    // role made for another database must not make this plan stale). Any other role a plan depends on
    // (prepare.roles: copy) shows up in the fresh plan, which must equal the saved one anyway.
    roles: c.roles.filter((r) => c.tables.some((t) => t.owner === r.name)),
    engine: c.engine && {
      version: c.engine.version,
      content: c.engine.content,
      queues: c.engine.queues.map((q) => ({ name: q.name, settings: q.settings, consumers: q.consumers.map((x) => x.name), tables: q.tables, sequences: q.sequences })),
      subscriptions: c.engine.subscriptions.map((s) => ({ queue: s.queue, consumer: s.consumer, tables: s.tables.map((t) => [t.schema, t.name]) })),
    },
  });
}

/** sha256 of the desired state without its passwords and without the path it was read from. */
export function fingerprintState(state: DesiredState): string {
  return sha256({ ...state, file: null, databases: state.databases.map((d) => ({ ...d, connection: { ...d.connection, password: undefined } })) });
}

function sha256(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** JSON with object keys sorted, so equal data always hashes the same. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp)
      ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v instanceof RegExp
        ? v.source
        : v,
  );
}
