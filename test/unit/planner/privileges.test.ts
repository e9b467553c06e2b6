/**
 * The rights each direction needs (src/planner/privileges.ts), on plain
 * catalogs of a managed service: an admin role `adm` that is no superuser,
 * tables owned by the application role `app`. Forward problems are errors
 * naming the exact grants; reverse problems are warnings; a superuser, or a
 * catalog without the rights read, needs nothing.
 */
import { describe, expect, it } from 'vitest';
import type { NodeCatalog, TableAccess } from '../../../src/catalog/index.js';
import { forwardPrivilegeProblems, reversePrivilegeProblems, type ReplicatedObject } from '../../../src/planner/index.js';
import { catalog, role, table } from './fixtures.js';

const NONE: TableAccess = { owner: false, select: false, insert: false, update: false, delete: false, truncate: false, trigger: false };
const ALL: TableAccess = { owner: true, select: true, insert: true, update: true, delete: true, truncate: true, trigger: true };
const DML: TableAccess = { ...NONE, select: true, insert: true, update: true, delete: true, truncate: true };

const TABLES: ReplicatedObject[] = [
  { schema: 'public', name: 'orders', owner: 'app' },
  { schema: 'public', name: 'customers', owner: 'app' },
];

/** A managed node: `adm` (not superuser) with the given rights on the tables, or none of them there. */
function managed(major: number, access: TableAccess | null, privileges: Partial<NodeCatalog['privileges']> = {}, schemaCreate: string[] = []): NodeCatalog {
  const tables = access ? TABLES.map((t) => table(t.name, ['id'], ['id'], { access })) : [];
  return catalog(major, tables, {
    privileges: {
      user: 'adm',
      superuser: false,
      canCreateSchema: true,
      canSetReplicationRole: major >= 15,
      canAlterDatabase: true,
      databaseOwner: 'adm',
      canSignalBackends: true,
      actsAs: [],
      canBecome: [],
      ...privileges,
    },
    sequences: [],
    roles: [role('adm'), role('app', { canLogin: false })],
    schemas: [{ name: 'public', owner: major >= 15 ? 'pg_database_owner' : 'postgres', usage: true, create: true, createForAll: major < 15, createBy: major < 15 ? [] : ['adm', ...schemaCreate] }],
  });
}

const codes = (xs: Array<{ code: string }>) => xs.map((x) => x.code);

describe('forwardPrivilegeProblems', () => {
  it('names the grants a managed admin lacks on the provider and the subscriber (16 → 17, schema copy)', () => {
    const problems = forwardPrivilegeProblems({
      provider: { node: 'old_root', catalog: managed(16, NONE) },
      subscriber: { node: 'new_leaf', catalog: managed(17, null) },
      tables: TABLES,
      sequences: [],
      schemaCopy: TABLES,
    });
    expect(codes(problems)).toEqual(['provider_cannot_capture', 'subscriber_cannot_write', 'subscriber_cannot_unfence', 'schema_copy_cannot_set_owner', 'schema_copy_owner_cannot_create']);
    expect(problems.every((p) => p.severity === 'error')).toBe(true);
    expect(problems.map((p) => p.node)).toEqual(['old_root', 'new_leaf', 'new_leaf', 'new_leaf', 'new_leaf']);
    const [capture, write, , setOwner, ownerCreate] = problems;
    expect(capture!.message).toBe('role "adm" on node "old_root" may not capture and copy public.orders (TRIGGER, SELECT), public.customers (TRIGGER, SELECT)');
    expect(capture!.hint).toContain('on node "old_root": GRANT app TO adm WITH INHERIT TRUE;');
    expect(capture!.hint).toContain('or as the owner: GRANT TRIGGER, SELECT ON TABLE public.orders, public.customers TO adm;');
    // Tables schema copy makes are owned by app: the admin writes them with app's rights, or not at all.
    expect(write!.hint).toContain('GRANT app TO adm WITH INHERIT TRUE;');
    expect(setOwner!.hint).toBe('on node "new_leaf": GRANT app TO adm WITH INHERIT TRUE, SET TRUE; (a CREATEROLE admin may grant itself a role it manages)');
    expect(ownerCreate!.hint).toContain('GRANT CREATE ON SCHEMA public TO app;');
  });

  it('asks nothing more once the documented grants are given', () => {
    const problems = forwardPrivilegeProblems({
      provider: { node: 'old_root', catalog: managed(12, { ...NONE, select: true, trigger: true }) },
      subscriber: { node: 'new_leaf', catalog: managed(17, null, { actsAs: ['app'], canBecome: ['app'] }, ['app']) },
      tables: TABLES,
      sequences: [],
      schemaCopy: TABLES,
    });
    expect(problems).toEqual([]);
  });

  it('before PostgreSQL 16 a membership needs no options, and public is open to everyone before 15', () => {
    const problems = forwardPrivilegeProblems({
      provider: { node: 'old_root', catalog: managed(12, { ...NONE, select: true }) },
      subscriber: { node: 'new_leaf', catalog: managed(14, null, { canSetReplicationRole: false }) },
      tables: TABLES,
      sequences: [],
      schemaCopy: TABLES,
    });
    expect(codes(problems)).toEqual(['provider_cannot_capture', 'cannot_set_replication_role', 'subscriber_cannot_write', 'subscriber_cannot_unfence', 'schema_copy_cannot_set_owner']);
    expect(problems[0]!.message).toContain('public.orders (TRIGGER)');
    expect(problems[0]!.hint).toContain('GRANT app TO adm;');
    expect(problems[1]!.hint).toMatch(/^before PostgreSQL 15 only a superuser may set it/);
    expect(problems[4]!.hint).toContain('GRANT app TO adm; (a CREATEROLE');
  });

  it('on existing subscriber tables asks for exactly the rights missing, and the owner\'s for the hand-over', () => {
    const problems = forwardPrivilegeProblems({
      provider: { node: 'old_root', catalog: managed(17, ALL) },
      subscriber: { node: 'new_leaf', catalog: managed(17, { ...DML, truncate: false }) },
      tables: TABLES,
      sequences: [],
      schemaCopy: [],
    });
    expect(codes(problems)).toEqual(['subscriber_cannot_write', 'subscriber_cannot_unfence']);
    expect(problems[0]!.message).toContain('public.orders (TRUNCATE)');
    expect(problems[0]!.hint).toContain('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE public.orders, public.customers TO adm;');
    expect(problems[1]!.message).toContain('public.orders (owner)');
  });

  it('fencing needs the database owner\'s rights (an error); ending sessions pg_signal_backend (a warning)', () => {
    const problems = forwardPrivilegeProblems({
      provider: { node: 'old_root', catalog: managed(12, ALL, { canAlterDatabase: false, databaseOwner: 'app', canSignalBackends: false }) },
      subscriber: { node: 'new_leaf', catalog: managed(17, ALL) },
      tables: TABLES,
      sequences: [],
      schemaCopy: [],
    });
    expect(problems.map((p) => [p.code, p.severity])).toEqual([
      ['cannot_fence_database', 'error'],
      ['cannot_end_sessions', 'warning'],
    ]);
    expect(problems[0]!.hint).toBe('on node "old_root": GRANT app TO adm; or, as app: ALTER DATABASE shop OWNER TO adm;');
    expect(problems[1]!.hint).toMatch(/^GRANT pg_signal_backend TO adm;/);
  });

  it('a superuser, and a catalog without the rights read, need nothing', () => {
    const su = catalog(12, TABLES.map((t) => table(t.name, ['id'])));
    expect(forwardPrivilegeProblems({ provider: { node: 'a', catalog: su }, subscriber: { node: 'b', catalog: catalog(17, []) }, tables: TABLES, sequences: [], schemaCopy: TABLES })).toEqual([]);
    const old = managed(17, ALL);
    for (const t of old.tables) delete t.access;
    expect(forwardPrivilegeProblems({ provider: { node: 'a', catalog: old }, subscriber: { node: 'b', catalog: managed(17, ALL) }, tables: TABLES, sequences: [], schemaCopy: [] })).toEqual([]);
  });

  it('a branch as the provider of a node under it is read, not captured: SELECT on its tables and sequences, from the branch\'s catalog', () => {
    const SEQ = [{ schema: 'public', name: 'orders_id_seq', owner: 'app' }];
    // The branch's role writes its tables (DML) and may move the sequence (UPDATE), but may not read it.
    const branch = { ...managed(17, DML, { canAlterDatabase: false, databaseOwner: 'app' }), sequences: [{ ...SEQ[0]!, access: { ...NONE, update: true } }] };
    const input = { provider: { node: 'b1', catalog: branch }, providerType: 'branch' as const, subscriber: { node: 'l1', catalog: managed(17, ALL) }, tables: TABLES, sequences: SEQ, schemaCopy: [] };
    const subscriberSequence = (c: NodeCatalog): NodeCatalog => ({ ...c, sequences: [{ ...SEQ[0]!, access: ALL }] });
    const problems = forwardPrivilegeProblems({ ...input, subscriber: { node: 'l1', catalog: subscriberSequence(managed(17, ALL)) } });
    // No TRIGGER asked on the branch (it captures nothing), and its own database is checked as a subscriber, not here.
    expect(codes(problems)).toEqual(['branch_provider_cannot_read']);
    expect(problems[0]!).toMatchObject({ node: 'b1', severity: 'error' });
    expect(problems[0]!.message).toBe('role "adm" on branch "b1" may not read public.orders_id_seq (SELECT), which the nodes it feeds copy and read from it');
    expect(problems[0]!.hint).toContain('GRANT SELECT ON SEQUENCE public.orders_id_seq TO adm;');
    // The same catalog as a root provider: TRIGGER is asked for as well.
    expect(codes(forwardPrivilegeProblems({ ...input, providerType: 'root', subscriber: { node: 'l1', catalog: subscriberSequence(managed(17, ALL)) } }))).toEqual(['provider_cannot_capture', 'cannot_fence_database']);
    const readable = { ...branch, tables: branch.tables.map((t) => ({ ...t, access: { ...NONE, select: true } })), sequences: [{ ...SEQ[0]!, access: { ...NONE, select: true } }] };
    expect(forwardPrivilegeProblems({ ...input, provider: { node: 'b1', catalog: readable }, subscriber: { node: 'l1', catalog: subscriberSequence(managed(17, ALL)) } })).toEqual([]);
  });

  it('making a capture trigger again, or removing it, needs the owner\'s rights on the provider', () => {
    const provider = managed(17, { ...NONE, select: true, trigger: true });
    const input = { provider: { node: 'old_root', catalog: provider }, subscriber: { node: 'new_leaf', catalog: managed(17, ALL) }, tables: TABLES, sequences: [], schemaCopy: [] };
    expect(forwardPrivilegeProblems(input)).toEqual([]);
    const [problem, ...rest] = forwardPrivilegeProblems({ ...input, recapture: [TABLES[0]!] });
    expect(rest).toEqual([]);
    expect(problem!.code).toBe('provider_cannot_capture');
    expect(problem!.message).toBe('role "adm" on node "old_root" may not capture and copy public.orders (owner)');
  });

  it('quotes a name that needs it in the grants it gives', () => {
    const c = managed(17, NONE, { user: 'Admin' });
    const [problem] = forwardPrivilegeProblems({ provider: { node: 'a', catalog: c }, subscriber: { node: 'b', catalog: managed(17, ALL) }, tables: [{ schema: 'public', name: 'orders', owner: 'App Owner' }], sequences: [], schemaCopy: [] });
    expect(problem!.hint).toContain('GRANT "App Owner" TO "Admin" WITH INHERIT TRUE;');
  });
});

describe('reversePrivilegeProblems', () => {
  it('from PostgreSQL 12 the old node cannot apply without a superuser: a warning that says so', () => {
    const problems = reversePrivilegeProblems({ old: { node: 'old_root', catalog: managed(12, ALL) }, neu: { node: 'new_leaf', catalog: managed(17, ALL) }, tables: TABLES, sequences: [] });
    expect(problems.map((p) => [p.code, p.severity])).toEqual([['reverse_cannot_set_replication_role', 'warning']]);
    expect(problems[0]!.message).toContain('a switch back would lose what is written on "new_leaf"');
    expect(problems[0]!.hint).toContain('switch over without --reverse');
  });

  it('from PostgreSQL 15 names the grant, and the rights the way back needs on both nodes', () => {
    const problems = reversePrivilegeProblems({
      old: { node: 'old_root', catalog: managed(16, { ...NONE, select: true, trigger: true }, { canSetReplicationRole: false }) },
      neu: { node: 'new_leaf', catalog: managed(17, DML) },
      tables: TABLES,
      sequences: [],
    });
    expect(codes(problems)).toEqual(['reverse_cannot_set_replication_role', 'reverse_cannot_write', 'reverse_cannot_unfence', 'reverse_cannot_capture']);
    expect(problems[0]!.hint).toMatch(/^GRANT SET ON PARAMETER session_replication_role TO adm;/);
    expect(problems[1]!.message).toContain('public.orders (INSERT, UPDATE, DELETE, TRUNCATE)');
    expect(problems[3]!.message).toContain('public.orders (TRIGGER, owner)');
    expect(problems[3]!.hint).toContain('GRANT app TO adm WITH INHERIT TRUE;');
  });

  it('tables schema copy will make count as their owner\'s; none once the admin acts as it', () => {
    const neu = managed(17, null, { actsAs: [] });
    expect(codes(reversePrivilegeProblems({ old: { node: 'o', catalog: managed(16, ALL) }, neu: { node: 'n', catalog: neu }, tables: TABLES, sequences: [] }))).toEqual(['reverse_cannot_capture']);
    neu.privileges.actsAs = ['app'];
    expect(reversePrivilegeProblems({ old: { node: 'o', catalog: managed(16, ALL) }, neu: { node: 'n', catalog: neu }, tables: TABLES, sequences: [] })).toEqual([]);
  });
});
