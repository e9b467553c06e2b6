import { describe, expect, it } from 'vitest';
import { keyIdentity, parseRowText } from '../../src/engine/row-text.js';

describe('parseRowText', () => {
  it('reads plain, quoted, empty, NULL and escaped fields', () => {
    expect(parseRowText('(1,abc,,"",x)')).toEqual(['1', 'abc', null, '', 'x']);
    expect(parseRowText('("a,b","c""d","e\\\\f","(g)")')).toEqual(['a,b', 'c"d', 'e\\f', '(g)']);
    expect(parseRowText('(5)')).toEqual(['5']);
    expect(parseRowText('()')).toEqual([null]);
    expect(parseRowText('("{""a"": null}","[0:2]={1,2,3}")')).toEqual(['{"a": null}', '[0:2]={1,2,3}']);
    expect(parseRowText('("line\nbreak",2)')).toEqual(['line\nbreak', '2']);
  });
  it('stops after the last field asked for', () => {
    expect(parseRowText('(1,2,3,4)', 1)).toEqual(['1', '2']);
  });
  it('refuses text that is not a row', () => {
    expect(() => parseRowText('1,2')).toThrow(/not a row/);
    expect(() => parseRowText('(1,"2)')).toThrow(/not a row/);
    expect(() => parseRowText('(1,2)x')).toThrow(/not a row/);
  });
  it('gives NULL and the empty string different identities', () => {
    expect(keyIdentity([null])).not.toBe(keyIdentity(['']));
    expect(keyIdentity(['a', 'b'])).not.toBe(keyIdentity(['a,b']));
  });
});
