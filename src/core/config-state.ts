import type { ConfigProblem, ConfigWarning } from "./errors.ts";
import { mergePools, type ParsedPools, type Pool } from "./config.ts";
import { cutUtf8, utf8Length } from "./utf8.ts";

/**
 * What the daemon uses from one pool ConfigMap. A version with problems never replaces a good one: the last
 * good pools stay in force and the ConfigMap is `stale` until it is fixed, so a typo cannot take addresses
 * away from running Services.
 */
export interface ConfigMapState {
  readonly configMap: string;
  /** The pools in force from this ConfigMap. */
  readonly pools: readonly Pool[];
  /** Problems of the newest version (empty when it is good). */
  readonly problems: readonly ConfigProblem[];
  /** True while the newest version is broken and an older good one (or its valid part) is used instead. */
  readonly stale: boolean;
  /** True once any version was fully good. */
  readonly everGood: boolean;
}

/**
 * Pure: the next state of one ConfigMap after a new version was parsed. Broken with a last good version → keep
 * it; broken and never good → use the pools that parsed cleanly (parsing never half-applies a pool).
 */
export function nextConfigMapState(
  prev: ConfigMapState | undefined,
  configMap: string,
  parsed: ParsedPools,
): ConfigMapState {
  if (parsed.problems.length === 0) {
    return { configMap, pools: parsed.pools, problems: [], stale: false, everGood: true };
  }
  if (prev?.everGood === true) return { ...prev, problems: parsed.problems, stale: true };
  return { configMap, pools: parsed.pools, problems: parsed.problems, stale: true, everGood: false };
}

export interface EffectivePools {
  readonly pools: readonly Pool[];
  /** Cross-ConfigMap problems (duplicate names, overlaps), by ConfigMap. */
  readonly problems: readonly ConfigProblem[];
}

/** Pure: the pools in force across all ConfigMaps (and the pools of MetalLB's CRDs, merged under the same rules). */
export function effectivePools(states: Iterable<Pick<ConfigMapState, "pools">>): EffectivePools {
  return mergePools([...states]);
}

/** The longest message kube-apiserver takes for an Event (NoteLengthLimit, in UTF-8 bytes). */
export const EVENT_MESSAGE_BYTES = 1024;

/**
 * Pure: `head` and then every problem (`path: message [code]; …`) in at most `limitBytes` UTF-8 bytes. Problems
 * that do not fit are left out whole and counted at the end, with where to see them all; only a single problem
 * longer than the room is itself cut.
 */
export function describeProblems(
  problems: readonly (ConfigProblem | ConfigWarning)[],
  head = "",
  limitBytes = EVENT_MESSAGE_BYTES,
): string {
  const parts = problems.map((p) => `${p.path}: ${p.message} [${p.code}]`);
  const all = head + parts.join("; ");
  if (utf8Length(all) <= limitBytes) return all;
  const rest = (n: number): string => `; … and ${n} more problem${n === 1 ? "" : "s"}; see \`lodestone check-config\``;
  let text = head;
  let bytes = utf8Length(head);
  let shown = 0;
  for (const part of parts) {
    const sep = shown === 0 ? 0 : 2;
    const left = parts.length - shown - 1;
    const need = sep + utf8Length(part) + (left > 0 ? utf8Length(rest(left)) : 0);
    if (bytes + need > limitBytes) break;
    text += (shown === 0 ? "" : "; ") + part;
    bytes += sep + utf8Length(part);
    shown++;
  }
  if (shown === 0) {
    // Not even one problem fits beside the count: the first one, cut.
    const tail = parts.length > 1 ? rest(parts.length - 1) : "";
    return `${cutUtf8(text + (parts[0] ?? ""), limitBytes - utf8Length(tail) - 3)}…${tail}`;
  }
  return text + rest(parts.length - shown);
}
