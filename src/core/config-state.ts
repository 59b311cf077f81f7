import type { ConfigProblem, ConfigWarning } from "./errors.ts";
import { mergePools, type ParsedPools, type Pool } from "./config.ts";

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

/** Pure: the pools in force across all ConfigMaps. */
export function effectivePools(states: Iterable<ConfigMapState>): EffectivePools {
  return mergePools([...states]);
}

/** One Event-sized text naming every problem: `path: message; path: message` (Events cap messages at 1 kB). */
export function describeProblems(problems: readonly (ConfigProblem | ConfigWarning)[], limit = 1000): string {
  const text = problems.map((p) => `${p.path}: ${p.message} [${p.code}]`).join("; ");
  return text.length <= limit ? text : `${text.slice(0, limit - 20)}… (${problems.length} problems)`;
}
