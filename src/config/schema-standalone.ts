/**
 * The desired-state schema's validator as source code (ajv's standalone
 * output), so that a command validates its file without compiling the
 * schema at every start (the compile was about 0.4 s of each `pgconvey`
 * command's start-up). The build writes it next to schema-check.js in dist/
 * (bin/validator.js) with the schema's hash; schema-check.ts uses it when the
 * hash matches the schema it reads, and compiles the schema otherwise (from
 * src/, in tests, or after the schema changed without a build).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Ajv, type Options } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';

/** The one set of ajv options, for the compiled and the standalone validator alike. */
export const SCHEMA_OPTIONS: Options = { allErrors: true, verbose: true, strict: true, allowUnionTypes: true };

/** The file name of the standalone validator beside schema-check.js. */
export const STANDALONE_FILE = 'desired-state.validate.cjs';

export function schemaHash(schemaText: string): string {
  return createHash('sha256').update(schemaText).digest('hex');
}

/**
 * The CommonJS source of the validator of `schemaText`, exporting the
 * validate function (`module.exports`) and `schemaHash`. Its requires of
 * ajv's runtime helpers are package paths (resolved from node_modules beside
 * the file) unless `absoluteRuntime` resolves them here (a file written
 * outside the package, in a test).
 */
export function standaloneValidatorSource(schemaText: string, absoluteRuntime = false): string {
  const ajv = new Ajv({ ...SCHEMA_OPTIONS, code: { source: true } });
  const validate = ajv.compile(JSON.parse(schemaText) as object);
  // A CommonJS module whose `exports.default` is the function: under Node's ESM the default import is `exports`.
  type Generate = (ajv: Ajv, validate: unknown) => string;
  const mod = standalone as unknown as Generate | { default: Generate };
  const generate = typeof mod === 'function' ? mod : mod.default;
  let code = generate(ajv, validate);
  if (absoluteRuntime) {
    const require = createRequire(import.meta.url);
    code = code.replace(/require\("(ajv\/dist\/runtime\/[^"]+)"\)/g, (_: string, p: string) => `require(${JSON.stringify(require.resolve(p))})`);
  }
  return `${code}\nmodule.exports.schemaHash = ${JSON.stringify(schemaHash(schemaText))};\n`;
}
