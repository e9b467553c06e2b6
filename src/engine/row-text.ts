/**
 * The text form of a row as PostgreSQL's record_out writes it — `(1,"a b",,"x""y")`:
 * fields separated by commas inside parentheses, an empty field is NULL, a
 * quoted field may hold `""` and backslash escapes. pgconvey ships every row
 * in this form (each field its type's own text output, under pinned
 * settings) and reads back only what it needs here: the key fields, to find
 * the events of one row. The subscriber parses the whole row with record_in.
 */

/**
 * The fields of a row text, up to and including field `last` (all fields
 * when omitted); NULL fields are null. Throws on text that is not a row.
 */
export function parseRowText(text: string, last = Number.MAX_SAFE_INTEGER): Array<string | null> {
  if (text.charCodeAt(0) !== 40 /* ( */) throw new RowTextError(text);
  const fields: Array<string | null> = [];
  let i = 1;
  const n = text.length;
  for (;;) {
    // One field, ending at an unquoted comma or the closing parenthesis.
    let value = '';
    let quotedOrNonEmpty = false;
    for (;;) {
      if (i >= n) throw new RowTextError(text);
      const ch = text.charCodeAt(i);
      if (ch === 44 /* , */ || ch === 41 /* ) */) break;
      quotedOrNonEmpty = true;
      if (ch === 34 /* " */) {
        i++;
        for (;;) {
          if (i >= n) throw new RowTextError(text);
          const q = text.charCodeAt(i);
          if (q === 34) {
            if (text.charCodeAt(i + 1) === 34) {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (q === 92 /* \ */) {
            value += text[i + 1] ?? '';
            i += 2;
            continue;
          }
          // Copy a run of plain characters at once.
          let j = i + 1;
          while (j < n) {
            const c = text.charCodeAt(j);
            if (c === 34 || c === 92) break;
            j++;
          }
          value += text.slice(i, j);
          i = j;
        }
      } else if (ch === 92) {
        value += text[i + 1] ?? '';
        i += 2;
      } else {
        let j = i + 1;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === 44 || c === 41 || c === 34 || c === 92) break;
          j++;
        }
        value += text.slice(i, j);
        i = j;
      }
    }
    fields.push(quotedOrNonEmpty ? value : null);
    if (fields.length > last) return fields;
    if (text.charCodeAt(i) === 41) {
      if (i !== n - 1) throw new RowTextError(text);
      return fields;
    }
    i++; // the comma
  }
}

/**
 * A key's identity: the text of its fields, each exactly as the type's
 * output function wrote it under the pinned settings, so one stored value
 * always gives the same identity whatever session wrote it.
 */
export function keyIdentity(fields: ReadonlyArray<string | null>): string {
  // The common one-column key without JSON: 's' + its text, or 'n' for NULL; a list of
  // several fields is JSON ('[' first), so no two lists share an identity.
  if (fields.length === 1) {
    const f = fields[0]!;
    return f === null ? 'n' : `s${f}`;
  }
  return JSON.stringify(fields);
}

export class RowTextError extends Error {
  constructor(text: string) {
    super(`not a row in record text form: ${text.length > 80 ? `${text.slice(0, 80)}…` : text}`);
    this.name = 'RowTextError';
  }
}
