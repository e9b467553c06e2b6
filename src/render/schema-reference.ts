/**
 * The field reference of docs/desired-state.md, generated from the JSON
 * schema's descriptions so the two cannot drift (a test compares them).
 */

interface SchemaNode {
  description?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  required?: string[];
  minimum?: number;
  maximum?: number;
}

export function renderSchemaReference(schema: SchemaNode & { definitions: Record<string, SchemaNode> }): string {
  const rows: string[] = ['| field | type | description |', '| --- | --- | --- |'];
  const resolve = (node: SchemaNode): SchemaNode => (node.$ref ? { ...schema.definitions[node.$ref.replace('#/definitions/', '')]!, ...stripRef(node) } : node);
  const typeOf = (node: SchemaNode): string => {
    const n = resolve(node);
    if (n.const !== undefined) return `\`${JSON.stringify(n.const)}\``;
    if (n.enum) return n.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
    if (node.$ref?.endsWith('/duration')) return 'duration';
    if (node.$ref?.endsWith('/pattern')) return 'name or glob';
    const t = Array.isArray(n.type) ? n.type.join(' \\| ') : (n.type ?? 'mapping');
    if (t === 'array' && n.items) return `list of ${typeOf(n.items)}`;
    if (t === 'object' && n.additionalProperties && typeof n.additionalProperties === 'object' && !n.properties) return 'mapping of name → …';
    return t === 'object' ? 'mapping' : t;
  };
  const walk = (node: SchemaNode, path: string, seen: Set<string>) => {
    const n = resolve(node);
    const ref = node.$ref ?? '';
    if (ref && seen.has(ref)) return;
    const nextSeen = ref ? new Set([...seen, ref]) : seen;
    for (const [key, child] of Object.entries(n.properties ?? {})) {
      const c = resolve(child);
      const required = n.required?.includes(key) ? ' **(required)**' : '';
      const range = c.minimum !== undefined || c.maximum !== undefined ? ` (${c.minimum ?? '…'}–${c.maximum ?? '…'})` : '';
      rows.push(`| \`${path}${key}\` | ${typeOf(child)}${range} | ${oneLine(c.description ?? '')}${required} |`);
      walk(child, `${path}${key}.`, nextSeen);
    }
    if (n.additionalProperties && typeof n.additionalProperties === 'object') {
      const child = n.additionalProperties;
      const inner = child.anyOf ? child.anyOf.find((a) => a.type !== 'null') ?? child : child;
      walk(inner, `${path}<name>.`, nextSeen);
    }
  };
  walk(schema, '', new Set());
  return rows.join('\n');
}

function stripRef(node: SchemaNode): SchemaNode {
  const { $ref: _ignored, ...rest } = node;
  return rest;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|');
}
