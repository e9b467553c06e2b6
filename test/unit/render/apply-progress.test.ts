/**
 * apply's progress lines: one line per action (`  + ID … done (N ms)`) when
 * actions run one at a time; a copy_schema running beside the next actions
 * ends its open line with `running` and gets a line of its own for its end;
 * a failure reads `failed`, on the action's own line.
 */
import { describe, expect, it } from 'vitest';
import { ApplyProgress } from '../../../src/render/index.js';

const copy = { id: 'copy_schema:new:q', change: 'create' as const };
const engine = { id: 'install_engine:db:src', change: 'create' as const };
const capture = { id: 'capture_table:old:public.t0', change: 'update' as const };
const remove = { id: 'remove_capture:old:public.t9', change: 'delete' as const };

describe('apply progress', () => {
  it('one line per action, as before, when they run one at a time', () => {
    const p = new ApplyProgress();
    const out = [p.start(engine), p.done(engine, 12), p.start(capture), p.done(capture, 3.125), p.start(remove), p.failed(remove)].join('');
    expect(out).toBe('  + install_engine:db:src … done (12 ms)\n  ~ capture_table:old:public.t0 … done (3 ms)\n  - remove_capture:old:public.t9 … failed\n');
  });

  it('a background action: its open line ends with "running", its end is a line of its own; lines never mix', () => {
    const p = new ApplyProgress();
    const out = [p.start(copy), p.start(engine), p.done(engine, 5), p.start(capture), p.done(copy, 7000), p.done(capture, 9)].join('');
    expect(out).toBe(
      [
        '  + copy_schema:new:q … running',
        '  + install_engine:db:src … done (5 ms)',
        '  ~ capture_table:old:public.t0 … running',
        '  + copy_schema:new:q … done (7000 ms)',
        '  ~ capture_table:old:public.t0 … done (9 ms)',
        '',
      ].join('\n'),
    );
  });

  it('a failure of an action whose line is not open (a group, a background action) names it', () => {
    const p = new ApplyProgress();
    expect(p.start(copy) + p.start(engine) + p.failed(copy) + p.done(engine, 1)).toBe(
      '  + copy_schema:new:q … running\n  + install_engine:db:src … running\n  + copy_schema:new:q … failed\n  + install_engine:db:src … done (1 ms)\n',
    );
  });
});
