/**
 * The parsed YAML document with its source positions. Everything that
 * reports a problem in the desired-state file asks this module where a path
 * (`['queues', 'app', 'nodes', 'new', 'provider']`) is, as line and column.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Diagnostic, SourcePosition } from '../kernel/index.js';

export type DocPath = ReadonlyArray<string | number>;

export interface SourceDocument {
  file: string;
  text: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

/** Parses YAML keeping positions; syntax errors and duplicate keys come back as diagnostics. */
export function parseSource(file: string, text: string): { source: SourceDocument; diagnostics: Diagnostic[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const source: SourceDocument = { file, text, doc, lines };
  const diagnostics: Diagnostic[] = [];
  for (const err of doc.errors) {
    const duplicate = err.code === 'DUPLICATE_KEY';
    diagnostics.push({
      severity: 'error',
      code: duplicate ? 'duplicate_key' : 'yaml_syntax',
      message: duplicate ? 'the same key appears twice in one mapping' : `invalid YAML: ${firstLine(err.message)}`,
      hint: duplicate
        ? 'remove or rename one of the two entries (names of databases, queues and nodes must be unique)'
        : 'fix the YAML syntax at this position (check indentation, colons and quotes)',
      position: positionAt(source, errorOffset(text, err.code, err.message, err.pos[0])),
    });
  }
  for (const warn of doc.warnings) {
    diagnostics.push({
      severity: 'warning',
      code: 'yaml_warning',
      message: firstLine(warn.message),
      position: positionAt(source, warn.pos[0]),
    });
  }
  return { source, diagnostics };
}

/** An unterminated quote is reported by yaml at the end of input; point at the quote that opened it instead. */
function errorOffset(text: string, code: string, message: string, offset: number): number {
  if (code === 'MISSING_CHAR') {
    const quote = /closing "quote/.test(message) ? '"' : /closing 'quote/.test(message) ? "'" : undefined;
    if (quote) {
      const opened = text.lastIndexOf(quote, offset - 1);
      if (opened >= 0) return opened;
    }
  }
  return offset;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

export function positionAt(source: SourceDocument, offset: number): SourcePosition {
  const { line, col } = source.lines.linePos(Math.max(0, Math.min(offset, source.text.length)));
  return { file: source.file, line, col };
}

/**
 * Position of the value at `path`, or of its key when `at` is 'key'. When the
 * path does not exist (a missing key), the nearest existing ancestor is used.
 */
export function locate(source: SourceDocument, path: DocPath, at: 'key' | 'value' = 'value'): SourcePosition {
  let node: unknown = source.doc.contents;
  let keyNode: Node | undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      keyNode = pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      keyNode = undefined;
      node = node.items[seg];
    } else {
      break;
    }
  }
  const target = at === 'key' && keyNode ? keyNode : ((node as Node | null) ?? keyNode);
  const offset = target?.range?.[0] ?? 0;
  return positionAt(source, offset);
}

/** A path as the user reads it: `queues.app.nodes.new`. */
export function formatPath(path: DocPath): string {
  return path.map((seg) => (typeof seg === 'number' ? `[${seg}]` : seg)).join('.').replace(/\.\[/g, '[');
}

/**
 * Position of a dotted path (`queues.app.tables.entries`, as plan checks name
 * one; names of databases, queues and nodes hold no dot), or undefined when
 * the document does not have it.
 */
export function locatePath(source: SourceDocument, dotted: string): SourcePosition | undefined {
  const path = dotted.split('.');
  let node: unknown = source.doc.contents;
  for (const seg of path) {
    if (!isMap(node)) return undefined;
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
    if (!pair) return undefined;
    node = pair.value;
  }
  return locate(source, path, 'key');
}
