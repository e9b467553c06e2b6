/**
 * The rights each direction of a replication needs, checked on catalogs: a
 * pure function per direction returning the problems found, each with a
 * code, a message naming the role, node and objects, and a hint giving the
 * exact grants in managed-service terms (an admin role that is no
 * superuser: it grants itself membership in the application roles it
 * manages, and the service's console gives `SET ON PARAMETER`). `plan`
 * reports forward problems as errors and reverse ones as warnings;
 * `switchover --reverse` refuses on any reverse problem, before it changes
 * anything. What each right is for:
 *
 * - provider: TRIGGER (capture triggers, the switchover's fence) and SELECT
 *   (the copy) on every replicated table, SELECT on every sequence; a branch
 *   as the provider of the nodes under it (cascades) captures nothing — what
 *   its subscribers' copies and workers read there is SELECT on every table
 *   and on every sequence (pgconvey.sequence_values reads the branch's own
 *   sequences as the connecting role), checked on the branch's catalog;
 * - subscriber: session_replication_role; SELECT, INSERT, UPDATE, DELETE,
 *   TRUNCATE on every table and UPDATE on every sequence (apply, copy,
 *   sequences); the owner's rights on every table (the hand-over drops the
 *   fence triggers: DROP TRIGGER is the owner's);
 * - both: the database owner's rights (the fence is `ALTER DATABASE … SET
 *   default_transaction_read_only`), and pg_signal_backend to end the
 *   application's sessions (a warning: needed only when some are open);
 * - schema copy: CREATE on each target schema (or on the database for a new
 *   schema), SET ROLE to each table owner (ALTER TABLE … OWNER TO), and
 *   CREATE on the schema for that owner (PostgreSQL checks the new owner);
 * - reverse (switchover --reverse, then the switch back): on the new node
 *   what a provider needs plus the owner's rights (the reverse capture
 *   triggers are dropped at the switch back); on the old node what a
 *   subscriber needs, session_replication_role included (superuser-only
 *   before PostgreSQL 15).
 *
 * Catalogs without the rights read (older snapshots, test fixtures) are
 * taken as allowing everything. No I/O.
 */
import type { NodeCatalog, TableAccess } from '../catalog/model.js';
import { nameKey, quoteIdent } from '../kernel/index.js';
import { tableNamed } from './catalog-index.js';

export interface PrivilegeProblem {
  /** A stable code (docs/errors.md). */
  code: string;
  /** `error` for what the forward path needs; `warning` for what only some step may need. */
  severity: 'error' | 'warning';
  /** The node whose role lacks the right. */
  node: string;
  message: string;
  hint: string;
}

/** One side of a direction: its node's name and its database's catalog. */
export interface PrivilegeSide {
  node: string;
  catalog: NodeCatalog;
}

/** A replicated table (or sequence) and its owner as the provider has it (a table made by schema copy gets that owner). */
export interface ReplicatedObject {
  schema: string;
  name: string;
  owner: string;
}

export interface ForwardInput {
  provider: PrivilegeSide;
  /** `branch`: the provider is a branch (cascades) — it is read, not captured; default `root`. */
  providerType?: 'root' | 'branch';
  subscriber: PrivilegeSide;
  tables: ReplicatedObject[];
  sequences: ReplicatedObject[];
  /** The tables schema copy will create on the subscriber. */
  schemaCopy: ReplicatedObject[];
  /** Captured tables whose capture triggers this plan makes again or removes (DROP TRIGGER: the owner's right). */
  recapture?: ReplicatedObject[];
}

export interface ReverseInput {
  /** The node that is the root today and subscribes to the reverse queue. */
  old: PrivilegeSide;
  /** The leaf that becomes the reverse queue's provider. */
  neu: PrivilegeSide;
  tables: ReplicatedObject[];
  sequences: ReplicatedObject[];
}

const ALL: TableAccess = { owner: true, select: true, insert: true, update: true, delete: true, truncate: true, trigger: true };
const NONE: TableAccess = { owner: false, select: false, insert: false, update: false, delete: false, truncate: false, trigger: false };

/** An identifier as a person would type it: bare when that means the same, else quoted. */
export function sqlName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

const qualifiedName = (o: { schema: string; name: string }) => `${sqlName(o.schema)}.${sqlName(o.name)}`;
const major = (c: NodeCatalog) => Math.floor(c.serverVersionNum / 10000);
const isSuper = (c: NodeCatalog) => c.privileges.superuser;
const user = (c: NodeCatalog) => sqlName(c.privileges.user);

/** The connecting role's rights on `o` there: read, or those of its owner-to-be when schema copy makes it, or none when it is not there. */
function accessOn(side: PrivilegeSide, o: ReplicatedObject, kind: 'table' | 'sequence', madeByCopy: boolean): TableAccess | null {
  const c = side.catalog;
  if (isSuper(c)) return ALL;
  const there = kind === 'table' ? tableNamed(c, o) : c.sequences.find((t) => t.schema === o.schema && t.name === o.name);
  if (there) return there.access ?? ALL;
  if (!madeByCopy) return null;
  if (c.privileges.actsAs === undefined) return ALL;
  return o.owner === c.privileges.user || c.privileges.actsAs.includes(o.owner) ? ALL : NONE;
}

interface Lacking {
  object: ReplicatedObject;
  kind: 'table' | 'sequence';
  rights: string[];
}

function lacking(side: PrivilegeSide, objects: ReplicatedObject[], kind: 'table' | 'sequence', needs: Array<keyof TableAccess>, madeByCopy: (o: ReplicatedObject) => boolean): Lacking[] {
  const out: Lacking[] = [];
  for (const o of objects) {
    const a = accessOn(side, o, kind, madeByCopy(o));
    if (!a) continue; // not there: another check says so
    const rights = needs.filter((n) => !a[n]).map((n) => (n === 'owner' ? 'owner' : n.toUpperCase()));
    if (rights.length) out.push({ object: o, kind, rights });
  }
  return out;
}

function listObjects(items: Lacking[]): string {
  const shown = items.slice(0, 8).map((l) => `${qualifiedName(l.object)} (${l.rights.join(', ')})`);
  return `${shown.join(', ')}${items.length > 8 ? ` and ${items.length - 8} more` : ''}`;
}

/** `GRANT owner TO user …;` for each owner, with the options PostgreSQL 16+ needs (INHERIT for its rights; SET to give objects to it). */
function membershipGrants(c: NodeCatalog, owners: string[], set: boolean): string {
  const options = major(c) >= 16 ? (set ? ' WITH INHERIT TRUE, SET TRUE' : ' WITH INHERIT TRUE') : '';
  return owners.map((o) => `GRANT ${sqlName(o)} TO ${user(c)}${options};`).join(' ');
}

const owners = (items: Lacking[]) => [...new Set(items.map((l) => l.object.owner))].sort();

/** The grants for `items`: membership in their owners (what a managed-service admin can give itself), or the rights themselves, as each owner. */
function grantHint(side: PrivilegeSide, items: Lacking[], rights: { table: string; sequence: string } | null, why: string): string {
  const c = side.catalog;
  const member = membershipGrants(c, owners(items), false);
  let hint = `on node "${side.node}": ${member} (a CREATEROLE admin may grant itself a role it manages)`;
  if (rights) {
    const tables = items.filter((l) => l.kind === 'table').map((l) => qualifiedName(l.object));
    const sequences = items.filter((l) => l.kind === 'sequence').map((l) => qualifiedName(l.object));
    const direct = [
      ...(tables.length ? [`GRANT ${rights.table} ON TABLE ${tables.join(', ')} TO ${user(c)};`] : []),
      ...(sequences.length ? [`GRANT ${rights.sequence} ON SEQUENCE ${sequences.join(', ')} TO ${user(c)};`] : []),
    ];
    hint += `, or as the owner: ${direct.join(' ')}`;
  }
  return `${hint} — ${why}`;
}

function replicationRoleHint(c: NodeCatalog, reverse: boolean): string {
  if (major(c) >= 15) {
    return `GRANT SET ON PARAMETER session_replication_role TO ${user(c)}; (as a superuser: on a managed service its console or the admin role when it holds the right WITH GRANT OPTION)`;
  }
  const instead = reverse ? ', or switch over without --reverse (a switch back then loses what is written on the new node)' : '';
  return `before PostgreSQL 15 only a superuser may set it (a service may let its admin role, e.g. rds_superuser on RDS): connect as such a role${instead}; see docs/security.md`;
}

/** What apply, run and the switchover to the subscriber need; errors, save ending sessions (a warning). */
export function forwardPrivilegeProblems(input: ForwardInput): PrivilegeProblem[] {
  const { provider: p, subscriber: s } = input;
  const out: PrivilegeProblem[] = [];
  const copied = new Set(input.schemaCopy.map(nameKey));
  const madeByCopy = (o: ReplicatedObject) => copied.has(nameKey(o));
  const never = () => false;
  const isBranch = input.providerType === 'branch';
  out.push(...(isBranch ? branchProviderProblems(p, input) : rootProviderProblems(p, input)));

  if (!s.catalog.privileges.canSetReplicationRole) {
    out.push({
      code: 'cannot_set_replication_role',
      severity: 'error',
      node: s.node,
      message: `role "${s.catalog.privileges.user}" on node "${s.node}" may not set session_replication_role, which applying needs`,
      hint: replicationRoleHint(s.catalog, false),
    });
  }
  const write = [
    ...lacking(s, input.tables, 'table', ['select', 'insert', 'update', 'delete', 'truncate'], madeByCopy),
    ...lacking(s, input.sequences, 'sequence', ['update'], never),
  ];
  if (write.length) {
    out.push({
      code: 'subscriber_cannot_write',
      severity: 'error',
      node: s.node,
      message: `role "${s.catalog.privileges.user}" on node "${s.node}" may not apply to ${listObjects(write)}`,
      hint: grantHint(s, write, { table: 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE', sequence: 'UPDATE' }, 'the copy and the worker write every replicated table, and move its sequences'),
    });
  }
  const unfence = lacking(s, input.tables, 'table', ['owner'], madeByCopy);
  if (unfence.length) {
    out.push({
      code: 'subscriber_cannot_unfence',
      severity: 'error',
      node: s.node,
      message: `role "${s.catalog.privileges.user}" on node "${s.node}" does not have the owner's rights on ${listObjects(unfence)}: the copy could not set its secondary indexes aside, nor the switchover's hand-over drop its fence triggers`,
      hint: grantHint(s, unfence, null, 'DROP INDEX and DROP TRIGGER are the table owner\'s'),
    });
  }
  // A branch provider's own database is checked where it is a subscriber (its own node's problems).
  for (const side of isBranch ? [s] : [p, s]) out.push(...databaseProblems(side));
  if (input.schemaCopy.length) out.push(...schemaCopyProblems(s, input.schemaCopy));
  return out;
}

/** What a root provider needs: capture triggers (and the owner's rights to make them again) and the copy on every table, its sequences read. */
function rootProviderProblems(p: PrivilegeSide, input: ForwardInput): PrivilegeProblem[] {
  const never = () => false;
  const recaptured = new Set((input.recapture ?? []).map(nameKey));
  const capture = [
    ...lacking(p, input.tables.filter((t) => !recaptured.has(nameKey(t))), 'table', ['trigger', 'select'], never),
    ...lacking(p, input.recapture ?? [], 'table', ['trigger', 'select', 'owner'], never),
    ...lacking(p, input.sequences, 'sequence', ['select'], never),
  ];
  if (!capture.length) return [];
  return [
    {
      code: 'provider_cannot_capture',
      severity: 'error',
      node: p.node,
      message: `role "${p.catalog.privileges.user}" on node "${p.node}" may not capture and copy ${listObjects(capture)}`,
      hint: grantHint(p, capture, { table: 'TRIGGER, SELECT', sequence: 'SELECT' }, 'capture triggers and the switchover\'s fence need TRIGGER, the copy SELECT; making a capture trigger again, or removing it, the owner\'s rights'),
    },
  ];
}

/**
 * What a branch needs as the provider of a node under it: nothing is captured there, but that node's copy
 * reads every table from the branch (SELECT) and its worker reads the branch's sequences (SELECT).
 */
function branchProviderProblems(p: PrivilegeSide, input: ForwardInput): PrivilegeProblem[] {
  const never = () => false;
  const read = [...lacking(p, input.tables, 'table', ['select'], never), ...lacking(p, input.sequences, 'sequence', ['select'], never)];
  if (!read.length) return [];
  return [
    {
      code: 'branch_provider_cannot_read',
      severity: 'error',
      node: p.node,
      message: `role "${p.catalog.privileges.user}" on branch "${p.node}" may not read ${listObjects(read)}, which the nodes it feeds copy and read from it`,
      hint: grantHint(p, read, { table: 'SELECT', sequence: 'SELECT' }, 'the copy of a node under the branch reads its tables there, and its worker the branch\'s sequence values'),
    },
  ];
}

/** Fencing a node: ALTER DATABASE … SET (the owner's); ending the application's sessions (pg_signal_backend). */
function databaseProblems(side: PrivilegeSide): PrivilegeProblem[] {
  const c = side.catalog;
  const out: PrivilegeProblem[] = [];
  if (c.privileges.canAlterDatabase === false) {
    const owner = c.privileges.databaseOwner ?? 'its owner';
    out.push({
      code: 'cannot_fence_database',
      severity: 'error',
      node: side.node,
      message: `role "${c.privileges.user}" on node "${side.node}" does not have the rights of database "${c.database}"'s owner (${owner}): the switchover could not fence it (ALTER DATABASE … SET default_transaction_read_only)`,
      hint: `on node "${side.node}": ${membershipGrants(c, [owner], false)} or, as ${sqlName(owner)}: ALTER DATABASE ${sqlName(c.database)} OWNER TO ${user(c)};`,
    });
  }
  if (c.privileges.canSignalBackends === false) {
    out.push({
      code: 'cannot_end_sessions',
      severity: 'warning',
      node: side.node,
      message: `role "${c.privileges.user}" on node "${side.node}" may not end other roles' sessions: a switchover stops if the application is still connected there`,
      hint: `GRANT pg_signal_backend TO ${user(c)}; (managed services give it to their admin role, e.g. rds_superuser), or disconnect the application yourself before switching over`,
    });
  }
  return out;
}

/** What creating the provider's tables on the subscriber (pg_dump's CREATE TABLE, then ALTER TABLE … OWNER TO) needs. */
function schemaCopyProblems(s: PrivilegeSide, tables: ReplicatedObject[]): PrivilegeProblem[] {
  const c = s.catalog;
  if (isSuper(c) || c.privileges.canBecome === undefined || c.schemas === undefined) return [];
  const out: PrivilegeProblem[] = [];
  const me = c.privileges.user;
  const roleExists = (r: string) => c.roles.some((x) => x.name === r);
  const ownerSet = [...new Set(tables.map((t) => t.owner))].sort();
  const cannotBecome = ownerSet.filter((o) => o !== me && !c.privileges.canBecome!.includes(o));
  if (cannotBecome.length) {
    const missing = cannotBecome.filter((o) => !roleExists(o));
    out.push({
      code: 'schema_copy_cannot_set_owner',
      severity: 'error',
      node: s.node,
      message: `role "${me}" on node "${s.node}" may not make ${cannotBecome.join(', ')} the owner of the tables schema copy creates (ALTER TABLE … OWNER TO needs SET ROLE to the new owner)`,
      hint: `on node "${s.node}": ${missing.length ? `create ${missing.join(', ')} first (CREATE ROLE …), then ` : ''}${membershipGrants(c, cannotBecome, true)} (a CREATEROLE admin may grant itself a role it manages)`,
    });
  }
  const bySchema = new Map<string, string[]>();
  for (const t of tables) bySchema.set(t.schema, [...new Set([...(bySchema.get(t.schema) ?? []), t.owner])]);
  const createHints: string[] = [];
  const ownerHints: string[] = [];
  const ownerMessages: string[] = [];
  for (const [schema, schemaOwners] of [...bySchema].sort(([a], [b]) => a.localeCompare(b))) {
    const info = c.schemas.find((x) => x.name === schema);
    if (!info) {
      if (!c.privileges.canCreateSchema) createHints.push(`GRANT CREATE ON DATABASE ${sqlName(c.database)} TO ${user(c)};`);
      continue; // a schema copy creates it, owned as on the provider
    }
    if (!info.create) createHints.push(`GRANT CREATE ON SCHEMA ${sqlName(schema)} TO ${user(c)};`);
    const cannot = schemaOwners.filter((o) => roleExists(o) && !info.createForAll && !info.createBy.includes(o)).sort();
    if (cannot.length) {
      ownerMessages.push(`${cannot.join(', ')} on schema ${sqlName(schema)}`);
      ownerHints.push(`GRANT CREATE ON SCHEMA ${sqlName(schema)} TO ${cannot.map(sqlName).join(', ')};`);
    }
  }
  if (createHints.length) {
    out.push({
      code: 'schema_copy_cannot_create',
      severity: 'error',
      node: s.node,
      message: `role "${me}" on node "${s.node}" may not create the tables schema copy makes there`,
      hint: `on node "${s.node}", as the schema's (or database's) owner: ${[...new Set(createHints)].join(' ')}`,
    });
  }
  if (ownerHints.length) {
    out.push({
      code: 'schema_copy_owner_cannot_create',
      severity: 'error',
      node: s.node,
      message: `on node "${s.node}" the owner(s) of the tables schema copy creates may not create in their schema (${ownerMessages.join('; ')}): PostgreSQL refuses to give them the tables (from 15, public is no longer open to everyone)`,
      hint: `on node "${s.node}", as the schema's owner (for public from PostgreSQL 15 the database's owner): ${ownerHints.join(' ')}`,
    });
  }
  return out;
}

/**
 * What `switchover --reverse` and the switch back need: the new node
 * captures its tables (and the switch back drops those triggers), the old
 * node applies (session_replication_role, writes) and gets its fence lifted
 * at the switch back. The severity given is `warning` (plan's view); the
 * switchover refuses on any.
 */
export function reversePrivilegeProblems(input: ReverseInput): PrivilegeProblem[] {
  const { old, neu } = input;
  const out: PrivilegeProblem[] = [];
  const owned = (o: ReplicatedObject) => tableNamed(neu.catalog, o) === undefined;
  if (!old.catalog.privileges.canSetReplicationRole) {
    out.push({
      code: 'reverse_cannot_set_replication_role',
      severity: 'warning',
      node: old.node,
      message: `role "${old.catalog.privileges.user}" on node "${old.node}" (PostgreSQL ${old.catalog.serverVersion}) may not set session_replication_role: replication back to it (switchover --reverse) cannot apply there, so a switch back would lose what is written on "${neu.node}"`,
      hint: replicationRoleHint(old.catalog, true),
    });
  }
  const write = [
    ...lacking(old, input.tables, 'table', ['select', 'insert', 'update', 'delete', 'truncate'], () => false),
    ...lacking(old, input.sequences, 'sequence', ['update'], () => false),
  ];
  if (write.length) {
    out.push({
      code: 'reverse_cannot_write',
      severity: 'warning',
      node: old.node,
      message: `role "${old.catalog.privileges.user}" on node "${old.node}" may not apply replication back to ${listObjects(write)}`,
      hint: grantHint(old, write, { table: 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE', sequence: 'UPDATE' }, 'switchover --reverse makes it a subscriber'),
    });
  }
  const unfence = lacking(old, input.tables, 'table', ['owner'], () => false);
  if (unfence.length) {
    out.push({
      code: 'reverse_cannot_unfence',
      severity: 'warning',
      node: old.node,
      message: `role "${old.catalog.privileges.user}" on node "${old.node}" does not have the owner's rights on ${listObjects(unfence)}: a switch back could not drop its fence triggers there`,
      hint: grantHint(old, unfence, null, 'DROP TRIGGER is the table owner\'s'),
    });
  }
  const capture = [
    ...lacking(neu, input.tables, 'table', ['trigger', 'select', 'owner'], owned),
    ...lacking(neu, input.sequences, 'sequence', ['select'], () => false),
  ];
  if (capture.length) {
    out.push({
      code: 'reverse_cannot_capture',
      severity: 'warning',
      node: neu.node,
      message: `role "${neu.catalog.privileges.user}" on node "${neu.node}" may not capture ${listObjects(capture)} for replication back to "${old.node}"`,
      hint: grantHint(neu, capture, null, 'the reverse queue\'s capture triggers are created at the switchover and dropped (the owner\'s right) at the switch back'),
    });
  }
  return out;
}
