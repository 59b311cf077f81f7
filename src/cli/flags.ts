import { parseArgs } from "node:util";

/** A flag of a sub-command; a `boolean` may also be given a value, `--speaker=false` or `--speaker false`. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
}
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export type FlagValues<S extends FlagSpecs> = {
  readonly [K in keyof S]?: S[K] extends { type: "boolean" }
    ? boolean
    : S[K] extends { multiple: true }
      ? string[]
      : string;
};

export type ParsedFlags<S extends FlagSpecs> =
  | { readonly ok: true; readonly values: FlagValues<S>; readonly positionals: readonly string[] }
  | { readonly ok: false; readonly error: string };

const BOOLEAN_TEXT = new Set(["true", "false"]);

/**
 * Pure: every sub-command's flags through node:util parseArgs, with each mistake as one short line. parseArgs
 * runs non-strict so that a value may start with a dash (`--metrics-port -1`) and a boolean may carry a value;
 * the strict checks (unknown flag, missing value, stray argument) are made here on its tokens.
 */
export function parseFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  options: { readonly positionals?: boolean } = {},
): ParsedFlags<S> {
  const { tokens } = parseArgs({
    args: [...args],
    options: specs,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  let taken = -1;
  for (const [i, t] of tokens.entries()) {
    if (t.kind === "option-terminator") continue;
    if (t.kind === "positional") {
      if (t.index === taken) continue;
      if (options.positionals !== true) return { ok: false, error: `unexpected argument "${t.value}"` };
      positionals.push(t.value);
      continue;
    }
    const spec = Object.hasOwn(specs, t.name) ? specs[t.name] : undefined;
    if (spec === undefined) return { ok: false, error: `unknown flag ${t.rawName}` };
    const flag = `--${t.name}`;
    if (spec.type === "boolean") {
      const next = tokens[i + 1];
      let text = t.value;
      if (text === undefined && next?.kind === "positional" && BOOLEAN_TEXT.has(next.value)) {
        text = next.value;
        taken = next.index;
      }
      if (text !== undefined && !BOOLEAN_TEXT.has(text)) {
        return { ok: false, error: `${flag} must be true or false, got "${text}"` };
      }
      values[t.name] = text !== "false";
      continue;
    }
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith("--"))) {
      return { ok: false, error: `${flag} needs a value` };
    }
    if (spec.multiple === true) values[t.name] = [...((values[t.name] as string[] | undefined) ?? []), t.value];
    else values[t.name] = t.value;
  }
  return { ok: true, values: values as FlagValues<S>, positionals };
}
