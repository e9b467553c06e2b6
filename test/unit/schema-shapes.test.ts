import { describe, expect, it } from 'vitest';
import { entryShape, representativeEntries } from '../../src/executor/schema-shapes.js';
import type { ScriptEntry } from '../../src/executor/schema-toc.js';

let id = 0;
const entry = (type: string, schema: string | null, tag: string, sql: string): ScriptEntry => ({
  entry: { dumpId: ++id, catalog: 1259, oid: id, type, schema, tag, owner: 'postgres', line: `${id}; 1259 ${id} ${type} ${schema ?? '-'} ${tag} postgres` },
  sql,
});
const tenant = (s: string, t: string, cols = 'id integer NOT NULL, v text') => [
  entry('TABLE', s, t, `CREATE TABLE ${s}.${t} (\n    ${cols}\n);\nALTER TABLE ${s}.${t} OWNER TO postgres;`),
  entry('CONSTRAINT', s, `${t} ${t}_pkey`, `ALTER TABLE ONLY ${s}.${t}\n    ADD CONSTRAINT ${t}_pkey PRIMARY KEY (id);`),
];
const names = (es: ScriptEntry[]) => es.map((e) => `${e.entry.type} ${e.entry.schema}.${e.entry.tag}`);

describe('schema copy dry run: one entry per shape in new schemas', () => {
  it('tries one table (with its constraint) of each shape, every schema entry, and everything outside new schemas', () => {
    const script = [
      entry('SCHEMA', null, 'tenant_1', 'CREATE SCHEMA tenant_1;'),
      entry('SCHEMA', null, 'tenant_2', 'CREATE SCHEMA tenant_2;'),
      ...tenant('tenant_1', 't_1'), ...tenant('tenant_1', 't_10'), ...tenant('tenant_2', 't_2'),
      ...tenant('tenant_2', 't_20', 'id integer NOT NULL, v text, w date'),
      ...tenant('public', 'a'), ...tenant('public', 'b'),
    ];
    expect(names(representativeEntries(script))).toEqual([
      'SCHEMA null.tenant_1', 'SCHEMA null.tenant_2',
      'TABLE tenant_1.t_1', 'CONSTRAINT tenant_1.t_1 t_1_pkey',
      'TABLE tenant_2.t_20', 'CONSTRAINT tenant_2.t_20 t_20_pkey',
      'TABLE public.a', 'CONSTRAINT public.a a_pkey', 'TABLE public.b', 'CONSTRAINT public.b b_pkey',
    ]);
  });

  it('blanks only whole identifiers, and the schema apart from the tag', () => {
    const [a] = tenant('s1', 't_6');
    const [b] = tenant('s2', 't_7');
    expect(entryShape(a!)).toBe(entryShape(b!));
    // t_6 referring to t_60 is not the shape of t_7 referring to itself
    const c = entry('VIEW', 's1', 't_6', 'CREATE VIEW s1.t_6 AS SELECT * FROM s1.t_60;');
    const d = entry('VIEW', 's2', 't_7', 'CREATE VIEW s2.t_7 AS SELECT * FROM s2.t_7;');
    expect(entryShape(c)).not.toBe(entryShape(d));
    // schema and name swapped refer to another object
    const e = entry('VIEW', 'x', 'y', 'CREATE VIEW x.y AS SELECT * FROM x.y;');
    const f = entry('VIEW', 'p', 'q', 'CREATE VIEW p.q AS SELECT * FROM q.p;');
    expect(entryShape(e)).not.toBe(entryShape(f));
  });

  it('tries everything when the script creates no schema', () => {
    const script = [...tenant('public', 'a'), ...tenant('public', 'b')];
    expect(representativeEntries(script)).toHaveLength(4);
  });
});
