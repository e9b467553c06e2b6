/**
 * The schema copy's choice of pg_dump entries, on plain data shaped like
 * `pg_restore -l` and the provider's pg_depend for a Pagila-like schema: a
 * sequence used only by a default, a partition bringing its parent and the
 * parent all its partitions, ATTACH after the indexes, what the subscriber
 * has left alone, a foreign key to a table the queue does not replicate.
 */
import { describe, expect, it } from 'vitest';
import { parseToc, selectEntries, splitScript, type DependRow, type ObjectInfo } from '../../../src/executor/schema-toc.js';

const LIST = `;
; Archive created at 2026-12-01 13:15:30 UTC
;
8; 2615 16385 SCHEMA - film_app postgres
560; 1247 16387 TYPE public mpaa_rating postgres
223; 1255 16411 FUNCTION public last_updated() postgres
204; 1259 16413 SEQUENCE public actor_actor_id_seq postgres
209; 1259 16423 TABLE public actor postgres
207; 1259 16419 SEQUENCE public payment_payment_id_seq postgres
214; 1259 16495 TABLE public payment postgres
215; 1259 16499 TABLE public payment_p2022_01 postgres
216; 1259 16503 TABLE public payment_p2022_02 postgres
210; 1259 16435 TABLE film_app language postgres
2852; 0 0 TABLE ATTACH public payment_p2022_01 postgres
2853; 0 0 TABLE ATTACH public payment_p2022_02 postgres
2876; 2606 16432 CONSTRAINT public actor actor_pkey postgres
2889; 2606 16548 CONSTRAINT public payment payment_pkey postgres
2892; 2606 16550 CONSTRAINT public payment_p2022_01 payment_p2022_01_pkey postgres
2895; 2606 16552 CONSTRAINT public payment_p2022_02 payment_p2022_02_pkey postgres
2904; 0 0 INDEX ATTACH public payment_p2022_01_pkey postgres
2906; 0 0 INDEX ATTACH public payment_p2022_02_pkey postgres
2915; 2620 16434 TRIGGER public actor last_updated postgres
2916; 2620 16600 TRIGGER public actor pgconvey_capture_1 postgres
2910; 2606 16472 FK CONSTRAINT public actor actor_language_fkey postgres
3295; 0 0 ACL public TABLE actor postgres
3296; 0 0 COMMENT public COLUMN actor.first_name postgres
3297; 0 0 ACL - SCHEMA film_app postgres
`;

const k = (catalog: number, oid: number) => `${catalog}:${oid}`;
const [NS, TYPE, PROC, CLASS, CON, TRG, DEF] = [2615, 1247, 1255, 1259, 2606, 2620, 2604];

const INFO = new Map<string, ObjectInfo>([
  [k(NS, 16385), { identity: 'schema film_app' }],
  [k(TYPE, 16387), { identity: 'type public.mpaa_rating' }],
  [k(PROC, 16411), { identity: 'function public.last_updated()' }],
  [k(CLASS, 16413), { identity: 'sequence public.actor_actor_id_seq', relkind: 'S' }],
  [k(CLASS, 16423), { identity: 'table public.actor', relkind: 'r' }],
  [k(CLASS, 16419), { identity: 'sequence public.payment_payment_id_seq', relkind: 'S' }],
  [k(CLASS, 16495), { identity: 'table public.payment', relkind: 'p' }],
  [k(CLASS, 16499), { identity: 'table public.payment_p2022_01', relkind: 'r' }],
  [k(CLASS, 16503), { identity: 'table public.payment_p2022_02', relkind: 'r' }],
  [k(CLASS, 16435), { identity: 'table film_app.language', relkind: 'r' }],
  [k(CON, 16432), { identity: 'table constraint actor_pkey on public.actor', indexName: 'actor_pkey' }],
  [k(CON, 16548), { identity: 'table constraint payment_pkey on public.payment', indexName: 'payment_pkey' }],
  [k(CON, 16550), { identity: 'table constraint payment_p2022_01_pkey on public.payment_p2022_01', indexName: 'payment_p2022_01_pkey' }],
  [k(CON, 16552), { identity: 'table constraint payment_p2022_02_pkey on public.payment_p2022_02', indexName: 'payment_p2022_02_pkey' }],
  [k(TRG, 16434), { identity: 'trigger last_updated on public.actor' }],
  [k(TRG, 16600), { identity: 'trigger pgconvey_capture_1 on public.actor', pgconvey: true }],
  [k(CON, 16472), { identity: 'table constraint actor_language_fkey on public.actor' }],
]);

const dep = (obj: string, ref: string, type: string): DependRow => ({ obj, ref, type });
const DEPENDS: DependRow[] = [
  dep(k(CLASS, 16423), k(NS, 2200), 'n'),
  // actor's inline default (no entry of its own) uses the sequence, which no column owns.
  dep(k(DEF, 16700), k(CLASS, 16423), 'a'),
  dep(k(DEF, 16700), k(CLASS, 16413), 'n'),
  dep(k(CON, 16432), k(CLASS, 16423), 'a'),
  dep(k(TRG, 16434), k(CLASS, 16423), 'a'),
  dep(k(TRG, 16434), k(PROC, 16411), 'n'),
  dep(k(TRG, 16600), k(CLASS, 16423), 'a'),
  dep(k(CON, 16472), k(CLASS, 16423), 'a'),
  dep(k(CON, 16472), k(CLASS, 16435), 'n'),
  dep(k(CLASS, 16435), k(NS, 16385), 'n'),
  // payment: partitions depend on their parent; keys on their tables; the parent's default on its sequence.
  dep(k(CLASS, 16499), k(CLASS, 16495), 'a'),
  dep(k(CLASS, 16503), k(CLASS, 16495), 'a'),
  dep(k(CON, 16548), k(CLASS, 16495), 'a'),
  dep(k(CON, 16550), k(CLASS, 16499), 'a'),
  dep(k(CON, 16552), k(CLASS, 16503), 'a'),
  dep(k(DEF, 16701), k(CLASS, 16495), 'a'),
  dep(k(DEF, 16701), k(CLASS, 16419), 'n'),
];

const entries = parseToc(LIST);
const names = (xs: Array<{ type: string; schema: string | null; tag: string }>) => xs.map((e) => `${e.type} ${e.schema ?? '-'} ${e.tag}`);

describe('schema copy: the entries chosen', () => {
  it('parses pg_restore -l, multi-word types and tags with spaces included', () => {
    expect(entries).toHaveLength(24);
    expect(entries.find((e) => e.dumpId === 2852)).toMatchObject({ catalog: 0, oid: 0, type: 'TABLE ATTACH', schema: 'public', tag: 'payment_p2022_01', owner: 'postgres' });
    expect(entries.find((e) => e.dumpId === 2910)).toMatchObject({ type: 'FK CONSTRAINT', tag: 'actor actor_language_fkey' });
    expect(entries.find((e) => e.dumpId === 3297)).toMatchObject({ type: 'ACL', schema: null, tag: 'SCHEMA film_app' });
  });

  it('a partition brings its parent and every other partition, a default its sequence (owned or not), a trigger its function; ATTACH comes after the keys', () => {
    const selected = new Set([k(CLASS, 16499), k(CLASS, 16423), k(CLASS, 16435)]);
    const s = selectEntries({ entries, depends: DEPENDS, info: INFO, present: new Set(), seeds: [k(CLASS, 16499), k(CLASS, 16423), k(CLASS, 16435)], selected, mode: 'tables' });
    expect(s.unselected).toEqual([]);
    expect(names(s.entries)).toEqual([
      'SCHEMA - film_app',
      'FUNCTION public last_updated()',
      'SEQUENCE public actor_actor_id_seq',
      'TABLE public actor',
      'SEQUENCE public payment_payment_id_seq',
      'TABLE public payment',
      'TABLE public payment_p2022_01',
      'TABLE public payment_p2022_02',
      'TABLE film_app language',
      'CONSTRAINT public actor actor_pkey',
      'CONSTRAINT public payment payment_pkey',
      'CONSTRAINT public payment_p2022_01 payment_p2022_01_pkey',
      'CONSTRAINT public payment_p2022_02 payment_p2022_02_pkey',
      'TABLE ATTACH public payment_p2022_01',
      'TABLE ATTACH public payment_p2022_02',
      'INDEX ATTACH public payment_p2022_01_pkey',
      'INDEX ATTACH public payment_p2022_02_pkey',
      'TRIGGER public actor last_updated',
      'FK CONSTRAINT public actor actor_language_fkey',
      'ACL public TABLE actor',
      'COMMENT public COLUMN actor.first_name',
      'ACL - SCHEMA film_app',
    ]);
    // Never pgconvey's own trigger, nor a type no created object uses.
    expect(names(s.entries).join('\n')).not.toMatch(/pgconvey_capture|mpaa_rating/);
  });

  it('leaves alone what the subscriber has: a partition added later to an existing parent comes alone, with its key and ATTACH', () => {
    const present = new Set([...INFO.values()].map((i) => i.identity).filter((i) => !i.includes('payment_p2022_02')));
    const s = selectEntries({ entries, depends: DEPENDS, info: INFO, present, seeds: [k(CLASS, 16503)], selected: new Set([k(CLASS, 16503)]), mode: 'tables' });
    expect(names(s.entries)).toEqual(['TABLE public payment_p2022_02', 'CONSTRAINT public payment_p2022_02 payment_p2022_02_pkey', 'TABLE ATTACH public payment_p2022_02', 'INDEX ATTACH public payment_p2022_02_pkey']);
  });

  it('reports a table the queue does not replicate that a created object needs (a foreign key), and creates it with all', () => {
    const s = selectEntries({ entries, depends: DEPENDS, info: INFO, present: new Set(), seeds: [k(CLASS, 16423)], selected: new Set([k(CLASS, 16423)]), mode: 'tables' });
    expect(s.unselected).toEqual([{ table: 'table film_app.language', neededBy: 'table constraint actor_language_fkey on public.actor' }]);
    expect(names(s.entries)).not.toContain('TABLE film_app language');
    const all = selectEntries({ entries, depends: DEPENDS, info: INFO, present: new Set(), seeds: [], selected: new Set(), mode: 'all' });
    expect(all.unselected).toEqual([]);
    expect(names(all.entries)).toContain('TABLE film_app language');
    expect(names(all.entries)).toContain('TYPE public mpaa_rating');
  });

  it("matches pg_restore's script to its entries by header, grants last as pg_restore writes them", () => {
    const chosen = entries.filter((e) => [8, 3297].includes(e.dumpId));
    const script = [
      '--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET client_encoding = \'UTF8\';\n',
      '--\n-- Name: film_app; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\nCREATE SCHEMA film_app;\n',
      '--\n-- Name: SCHEMA film_app; Type: ACL; Schema: -; Owner: postgres\n--\n\nGRANT USAGE ON SCHEMA film_app TO reader;\n\\unrestrict abc\n',
    ].join('\n');
    const split = splitScript(script, [...chosen].reverse());
    expect(split?.entries.map((e) => [e.entry.dumpId, e.sql])).toEqual([
      [8, 'CREATE SCHEMA film_app;'],
      [3297, 'GRANT USAGE ON SCHEMA film_app TO reader;'],
    ]);
    expect(split?.preamble).toContain("SET client_encoding = 'UTF8';");
    expect(split?.preamble).not.toContain('\\restrict');
    expect(splitScript(script, chosen.slice(0, 1))).toBeNull();
  });
});
