import type { Document } from "yaml";
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import { z } from "zod";
import type { ConfigProblem, ConfigWarning } from "./errors.ts";
import { ConfigCodes, configMessages, ConfigWarningCodes, problem, warning } from "./errors.ts";
import type { Family } from "./ip.ts";
import type { AddressRange } from "./range.ts";
import { addressRange, buggyCount, formatRange, parseRange, rangeOverlap, rangeSize } from "./range.ts";
import type { LabelSelector, LabelSelectorRequirement } from "./selector.ts";
import { selectorOperators, validateSelector } from "./selector.ts";
import { suggestField } from "./suggest.ts";
import { ADDRESS_POOL_ANNOTATION, POOLS_LABEL } from "./well-known.ts";

/** Data key of the Lodestone format: a YAML list of pools. */
export const POOLS_KEY = "pools.yaml";
/** Data key of a MetalLB <= 0.12 ConfigMap. */
export const METALLB_KEY = "config";

// ---- schema (the single source of config/schema.json) ----

const addressEntry = z
  .string()
  .describe("A CIDR (192.0.2.0/24, 2001:db8::/64), a range (192.0.2.10-192.0.2.20) or one address")
  .superRefine((text, ctx) => {
    const r = parseRange(text);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.error.message, params: { lodestone: r.error.code } });
  });

export const LabelSelectorSchema = z
  .strictObject({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z
      .array(
        z.strictObject({
          key: z.string(),
          operator: z.enum(selectorOperators),
          values: z.array(z.string()).optional(),
        }),
      )
      .optional(),
  })
  .describe("A Kubernetes label selector")
  .superRefine((sel, ctx) => {
    for (const p of validateSelector(toSelector(sel))) {
      ctx.addIssue({
        code: "custom",
        path: [p.path],
        message: p.message,
        params: { lodestone: ConfigCodes.badSelector },
      });
    }
  });

const gratuitousDefaults = { intervalMs: 1100, count: 5 };

/** Which free address a pool hands out: see the schema's description of `allocationOrder`. */
export const allocationOrders = ["next", "lowest"] as const;
export type AllocationOrder = (typeof allocationOrders)[number];

/** Names a `pools.yaml` pool may have: what an annotation value, a metric label and a shell word carry plainly. */
const POOL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export const PoolSchema = z
  .strictObject({
    name: z
      .string()
      .regex(POOL_NAME, "must be 1-63 characters [A-Za-z0-9-_.]")
      .describe(`Unique pool name; Services ask for it with the ${ADDRESS_POOL_ANNOTATION} annotation`),
    addresses: z.array(addressEntry).min(1).describe("IPv4 and IPv6 entries may mix in one pool"),
    autoAssign: z
      .boolean()
      .default(true)
      .describe("When false the pool is used only when a Service asks for it or for one of its IPs"),
    avoidBuggyIPs: z.boolean().default(false).describe("Never hand out IPv4 addresses ending in .0 or .255"),
    allocationOrder: z
      .enum(allocationOrders)
      .default("next")
      .describe(
        "next: the next free address after the last one handed out (a released address is not reused at once); lowest: the lowest free address, as MetalLB",
      ),
    priority: z
      .number()
      .int()
      .optional()
      .describe("Lower numbers are tried first (as MetalLB's serviceAllocation.priority); pools without one come last"),
    serviceAllocation: z
      .strictObject({
        namespaces: z.array(z.string().min(1)).optional().describe("Only Services in these namespaces"),
        namespaceSelector: LabelSelectorSchema.optional().describe("Only Services in namespaces with matching labels"),
        serviceSelector: LabelSelectorSchema.optional().describe("Only Services with matching labels"),
        allowCrossNamespaceSharing: z
          .boolean()
          .default(false)
          .describe("Services in different namespaces may share an IP through a sharing key"),
      })
      .optional()
      .describe("Who may get addresses from this pool; enforced for explicitly requested IPs too"),
    announce: z
      .strictObject({
        interfaces: z.array(z.string().min(1)).optional().describe("Announce only on these interfaces"),
        nodeSelector: LabelSelectorSchema.optional().describe("Only nodes with matching labels announce"),
        externalIPs: z
          .boolean()
          .default(false)
          .describe("Also announce Service spec.externalIPs that fall inside this pool"),
        layer2: z
          .boolean()
          .default(true)
          .describe("Announce with ARP/NDP; false for a pool only BGP advertises (bgp.yaml, docs/bgp.md)"),
        gratuitous: z
          .strictObject({
            intervalMs: z.number().int().min(10).max(60_000).default(gratuitousDefaults.intervalMs),
            count: z.number().int().min(0).max(100).default(gratuitousDefaults.count),
            refreshSeconds: z
              .number()
              .int()
              .min(1)
              .optional()
              .describe("Re-send a gratuitous burst this often while the IP is held"),
          })
          .default(gratuitousDefaults)
          .describe("Gratuitous ARP / unsolicited NA burst sent when a node takes an IP over"),
      })
      .default({ externalIPs: false, layer2: true, gratuitous: gratuitousDefaults }),
  })
  .describe("An address pool");

/** What `pools.yaml` holds. */
export const PoolListSchema = z.array(PoolSchema).describe("Lodestone address pools (ConfigMap data key pools.yaml)");

type RawPool = z.output<typeof PoolSchema>;

/** JSON Schema of `pools.yaml`, as written to config/schema.json by `npm run gen:schema`. */
export const poolsJsonSchema = (): unknown => z.toJSONSchema(PoolListSchema, { io: "input" });

// ---- validated values ----

export type { RawPool };

export interface GratuitousSettings {
  readonly intervalMs: number;
  readonly count: number;
  readonly refreshSeconds?: number;
}

/**
 * One MetalLB L2Advertisement as it applies to a pool: the nodes that may announce (any selector matching; none:
 * every node) and on which interfaces (none: wherever the IP's subnet is).
 */
export interface Advertisement {
  /** `namespace/name` of the L2Advertisement. */
  readonly name: string;
  readonly nodeSelectors?: readonly LabelSelector[];
  readonly interfaces?: readonly string[];
}

export interface PoolAnnounce {
  readonly interfaces?: readonly string[];
  readonly nodeSelector?: LabelSelector;
  /**
   * Pools from MetalLB's CRDs: the L2Advertisements that select the pool, which replace `interfaces` and
   * `nodeSelector`. An empty list: the pool allocates but nothing announces it, as in MetalLB.
   */
  readonly advertisements?: readonly Advertisement[];
  readonly externalIPs: boolean;
  /** False: only BGP advertises the pool (absent, as for MetalLB's pools: layer 2 as before). */
  readonly layer2?: boolean;
  readonly gratuitous: GratuitousSettings;
}

export interface ServiceAllocation {
  readonly namespaces?: readonly string[];
  readonly namespaceSelector?: LabelSelector;
  readonly serviceSelector?: LabelSelector;
  /** MetalLB's lists (IPAddressPool serviceAllocation): any one matching admits, beside the singular ones. */
  readonly namespaceSelectors?: readonly LabelSelector[];
  readonly serviceSelectors?: readonly LabelSelector[];
  readonly allowCrossNamespaceSharing: boolean;
}

/** A validated, frozen pool. `addresses` are sorted by family then start, merged where adjacent. */
export interface Pool {
  readonly name: string;
  readonly addresses: readonly AddressRange[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly allocationOrder: AllocationOrder;
  readonly priority?: number;
  readonly serviceAllocation: ServiceAllocation;
  readonly announce: PoolAnnounce;
  /**
   * Where it is defined: "namespace/name" of its ConfigMap, or "IPAddressPool namespace/name" for a pool read
   * from MetalLB's CRDs (problems carry the same in their `configMap`).
   */
  readonly configMap: string;
  /** Where in that ConfigMap, e.g. `pools.yaml[2]` or `config.address-pools[0]` (for problem paths). */
  readonly path?: string;
}

/** Usable addresses of one family (avoidBuggyIPs excluded), exact. */
export function poolCapacity(pool: Pool, family: Family): bigint {
  let n = 0n;
  for (const r of pool.addresses) {
    if (r.family === family) n += rangeSize(r) - (pool.avoidBuggyIPs ? buggyCount(r) : 0n);
  }
  return n;
}

export interface ConfigMapInput {
  readonly namespace: string;
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly data?: Readonly<Record<string, string>> | undefined;
}

export interface ParsedPools {
  /** Pools without problems only: a pool with any problem is left out, never half-applied. */
  readonly pools: readonly Pool[];
  readonly problems: readonly ConfigProblem[];
}

// ---- parsing ----

/**
 * Parses one pool ConfigMap (either format), reporting every problem found in it. Warnings are said but change
 * nothing: their pools are in force and they never make a ConfigMap stale.
 */
export function parsePoolConfigMap(cm: ConfigMapInput): ParsedPools & {
  readonly format: "lodestone" | "metallb";
  readonly warnings: readonly ConfigWarning[];
} {
  const configMap = `${cm.namespace}/${cm.name}`;
  const data = cm.data ?? {};
  const problems: ConfigProblem[] = [];
  const warnings: ConfigWarning[] = [];
  const pools: Pool[] = [];
  const lodestoneText = data[POOLS_KEY];
  const metallbText = data[METALLB_KEY];
  // A ConfigMap may hold only BGP settings (bgp.yaml, parsed by core/bgp-config.ts).
  if (lodestoneText === undefined && metallbText === undefined && data["bgp.yaml"] === undefined) {
    problems.push(problem(ConfigCodes.noPoolData, configMap, "data", configMessages.noPoolData()));
  }
  if (lodestoneText !== undefined) {
    if (cm.labels !== undefined && cm.labels[POOLS_LABEL] !== "true") {
      problems.push(
        problem(
          ConfigCodes.invalidValue,
          configMap,
          `metadata.labels.${POOLS_LABEL}`,
          `the daemon reads only ConfigMaps labelled ${POOLS_LABEL}: "true"`,
        ),
      );
    }
    parseLodestone(lodestoneText, configMap, pools, problems);
  }
  if (metallbText !== undefined) parseMetalLB(metallbText, configMap, pools, problems, warnings);
  const merged = mergePools([{ pools }]);
  return {
    pools: merged.pools,
    problems: [...problems, ...merged.problems],
    format: lodestoneText === undefined ? "metallb" : "lodestone",
    warnings,
  };
}

/**
 * The parsed document, or undefined after reporting every syntax error in it. `retype` may change scalars of the
 * parsed tree before it becomes plain values.
 */
export function parseYaml(
  text: string,
  configMap: string,
  key: string,
  problems: ConfigProblem[],
  retype?: (doc: Document) => void,
): { doc: unknown } | undefined {
  const doc = parseDocument(text);
  for (const e of doc.errors) {
    const detail = (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    problems.push(
      problem(ConfigCodes.yamlSyntax, configMap, key, configMessages.yamlSyntax(e.linePos?.[0].line, detail)),
    );
  }
  if (doc.errors.length > 0) return undefined;
  retype?.(doc);
  return { doc: doc.toJS() };
}

function parseLodestone(text: string, configMap: string, pools: Pool[], problems: ConfigProblem[]): void {
  const parsed = parseYaml(text, configMap, POOLS_KEY, problems);
  if (parsed === undefined) return;
  const doc = parsed.doc;
  if (!Array.isArray(doc)) {
    problems.push(
      problem(ConfigCodes.wrongType, configMap, POOLS_KEY, configMessages.wrongType("a list of pools", describe(doc))),
    );
    return;
  }
  const names = new DeclaredNames(configMap, problems);
  doc.forEach((item: unknown, i) => {
    const before = problems.length;
    const at = poolPath(`${POOLS_KEY}[${i}]`, item);
    const r = PoolSchema.safeParse(item, { reportInput: true });
    if (!r.success) {
      for (const issue of r.error.issues) problems.push(...issueProblems(issue, configMap, at, PoolSchema));
      names.declare(item, at);
    } else {
      const pool = buildPool(r.data, configMap, at, problems);
      names.declare(item, at);
      if (problems.length === before) pools.push(pool);
    }
  });
}

/**
 * Where a pool is, as problems name it: `pools.yaml[2] (web)`. The index alone is hard to find in a long list,
 * the name alone is ambiguous when it is duplicated or missing, so both.
 */
function poolPath(at: string, item: unknown): string {
  const name = typeof item === "object" && item !== null ? (item as Record<string, unknown>)["name"] : undefined;
  return typeof name === "string" && name !== "" ? `${at} (${name})` : at;
}

/**
 * Pool names declared in one ConfigMap, valid pools or not. The later of two pools with one name is ignored and
 * reported even when either has other problems: which pool wins must not change when a typo in the first is
 * fixed, and the duplicate should be reported in the same run as the typo.
 */
class DeclaredNames {
  readonly #seen = new Set<string>();
  readonly #configMap: string;
  readonly #problems: ConfigProblem[];
  constructor(configMap: string, problems: ConfigProblem[]) {
    this.#configMap = configMap;
    this.#problems = problems;
  }
  declare(item: unknown, at: string): void {
    const name = typeof item === "object" && item !== null ? (item as Record<string, unknown>)["name"] : undefined;
    if (typeof name !== "string" || name === "") return;
    if (!this.#seen.has(name)) {
      this.#seen.add(name);
      return;
    }
    this.#problems.push(
      problem(
        ConfigCodes.duplicatePool,
        this.#configMap,
        `${at}.name`,
        configMessages.duplicatePool(name, this.#configMap),
      ),
    );
  }
}

// MetalLB <= 0.12 `config`: only layer2 address pools have a Lodestone meaning. MetalLB takes any non-empty
// pool name (internal/config/config.go, parseAddressPool at v0.12.1), and Services name the pool by annotation,
// so a legacy pool keeps its name; an unusual one is a warning.
const legacyName = z.string().min(1);
const legacyPoolSchema = z.strictObject({
  name: legacyName,
  protocol: z.enum(["layer2", "bgp"]),
  addresses: z.array(addressEntry).min(1),
  "auto-assign": z.boolean().optional(),
  "avoid-buggy-ips": z.boolean().optional(),
  "bgp-advertisements": z.unknown().optional(),
});
const legacyTopLevel = ["address-pools", "peers", "bgp-communities", "bfd-profiles"];
/** A legacy pool as `pools.yaml` would hold it, but for the name. */
const legacyAsPool = PoolSchema.extend({ name: legacyName });

/**
 * What go-yaml v2 (which MetalLB <= 0.12 decodes `config` with) reads as a boolean: YAML 1.1's words. Only for
 * the boolean fields: YAML 1.1 as a whole would also read `2001:10:20:30:40:50:1:2` as a base-60 number and
 * `2001-12-14` as a date.
 */
const GO_YAML_V2_BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"].map((w) => [w, true] as const),
  ...["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"].map((w) => [w, false] as const),
]);
const LEGACY_BOOLEAN_FIELDS = new Set(["auto-assign", "avoid-buggy-ips"]);
const LEGACY_STRING_FIELDS = new Set(["name", "protocol"]);

/**
 * Types the scalars of the address pools as MetalLB's Go structs do: go-yaml v2 decodes a plain scalar by the
 * field it lands in, so `auto-assign: no` is false and `name: 010` is the text "010" (not the number 10).
 */
function retypeLegacy(doc: Document): void {
  const pools = doc.get("address-pools", true);
  if (!isSeq(pools)) return;
  for (const item of pools.items) {
    if (!isMap(item)) continue;
    for (const pair of item.items) {
      const field = isScalar(pair.key) ? pair.key.value : undefined;
      const value = pair.value;
      if (typeof field !== "string") continue;
      if (LEGACY_BOOLEAN_FIELDS.has(field) && isScalar(value) && value.type === "PLAIN") {
        const b = value.source === undefined ? undefined : GO_YAML_V2_BOOLEANS.get(value.source);
        if (b !== undefined) value.value = b;
      } else if (LEGACY_STRING_FIELDS.has(field)) {
        asText(value);
      } else if (field === "addresses" && isSeq(value)) {
        for (const entry of value.items) asText(entry);
      }
    }
  }
}

/** A plain scalar that YAML typed as a number or boolean becomes its text, as go-yaml v2 gives a string field. */
function asText(node: unknown): void {
  if (!isScalar(node) || node.type !== "PLAIN" || node.source === undefined) return;
  if (typeof node.value === "number" || typeof node.value === "boolean") node.value = node.source;
}

/** Nothing configured: an absent key, `peers:`, `peers: []`, `bgp-communities: {}`. */
const isEmptySection = (v: unknown): boolean =>
  v === null ||
  v === undefined ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0);

function parseMetalLB(
  text: string,
  configMap: string,
  pools: Pool[],
  problems: ConfigProblem[],
  warnings: ConfigWarning[],
): void {
  const parsed = parseYaml(text, configMap, METALLB_KEY, problems, retypeLegacy);
  if (parsed === undefined) return;
  const doc = parsed.doc;
  // MetalLB's Parse accepts an empty config (no pools): go-yaml v2 decodes nothing into an empty struct.
  if (doc === null || doc === undefined) return;
  if (typeof doc !== "object" || Array.isArray(doc)) {
    problems.push(
      problem(ConfigCodes.wrongType, configMap, METALLB_KEY, configMessages.wrongType("a mapping", describe(doc))),
    );
    return;
  }
  for (const [key, value] of Object.entries(doc)) {
    if (key === "address-pools") continue;
    const path = `${METALLB_KEY}.${key}`;
    if (legacyTopLevel.includes(key)) {
      // An empty BGP section configures nothing, so there is nothing Lodestone fails to do.
      if (isEmptySection(value)) continue;
      problems.push(
        problem(
          ConfigCodes.unsupported,
          configMap,
          path,
          configMessages.unsupported(
            `MetalLB "${key}"`,
            "MetalLB BGP settings are not mapped yet; write them as bgp.yaml (docs/bgp.md)",
          ),
        ),
      );
    } else {
      problems.push(
        problem(
          ConfigCodes.unknownField,
          configMap,
          path,
          configMessages.unknownField(key, suggestField(key, legacyTopLevel)),
        ),
      );
    }
  }
  const list: unknown = (doc as Record<string, unknown>)["address-pools"];
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) {
    problems.push(
      problem(
        ConfigCodes.wrongType,
        configMap,
        `${METALLB_KEY}.address-pools`,
        configMessages.wrongType("a list", describe(list)),
      ),
    );
    return;
  }
  const names = new DeclaredNames(configMap, problems);
  list.forEach((item: unknown, i) => {
    const at = poolPath(`${METALLB_KEY}.address-pools[${i}]`, item);
    const before = problems.length;
    names.declare(item, at);
    const duplicate = problems.length > before;
    const protocol =
      typeof item === "object" && item !== null ? (item as Record<string, unknown>)["protocol"] : undefined;
    const name = typeof item === "object" && item !== null ? (item as Record<string, unknown>)["name"] : undefined;
    if (protocol === "bgp") {
      problems.push(
        problem(
          ConfigCodes.unsupported,
          configMap,
          at,
          configMessages.unsupported(
            `address pool "${String(name)}" with protocol bgp`,
            "MetalLB BGP pools are not mapped yet; write a pool with announce.layer2: false and a bgp.yaml advertisement (docs/bgp.md)",
          ),
        ),
      );
      return;
    }
    const r = legacyPoolSchema.safeParse(item, { reportInput: true });
    if (!r.success) {
      for (const issue of r.error.issues) {
        problems.push(...issueProblems(issue, configMap, at, legacyPoolSchema));
      }
      return;
    }
    const l = r.data;
    if (!isEmptySection(l["bgp-advertisements"])) {
      problems.push(
        problem(
          ConfigCodes.unsupported,
          configMap,
          `${at}.bgp-advertisements`,
          configMessages.unsupported("bgp-advertisements", "not mapped yet; write them as bgp.yaml (docs/bgp.md)"),
        ),
      );
      return;
    }
    const raw = legacyAsPool.parse({
      name: l.name,
      addresses: l.addresses,
      autoAssign: l["auto-assign"] ?? true,
      avoidBuggyIPs: l["avoid-buggy-ips"] ?? false,
      // MetalLB hands out the lowest free address (getIPFromCIDR walks each CIDR from its start): a Service
      // deleted and created again gets its address back, as it did under MetalLB.
      allocationOrder: "lowest",
      // MetalLB lets Services of any namespaces share an address by key; keep that, or a migration would split
      // the Services it paired across namespaces.
      serviceAllocation: { allowCrossNamespaceSharing: true },
    });
    const pool = buildPool(raw, configMap, at, problems);
    if (problems.length !== before || duplicate) return;
    pools.push(pool);
    if (!POOL_NAME.test(l.name)) {
      warnings.push(
        warning(ConfigWarningCodes.unusualPoolName, configMap, `${at}.name`, configMessages.unusualPoolName(l.name)),
      );
    }
  });
}

export function buildPool(raw: RawPool, configMap: string, at: string, problems: ConfigProblem[]): Pool {
  const ranges: AddressRange[] = [];
  raw.addresses.forEach((text) => {
    const r = parseRange(text);
    if (r.ok) ranges.push(r.value);
  });
  const sorted = [...ranges].sort(
    (a, b) => a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0),
  );
  const merged: AddressRange[] = [];
  for (const r of sorted) {
    const prev = merged.at(-1);
    const overlap = prev && rangeOverlap(prev, r);
    if (overlap !== undefined) {
      problems.push(
        problem(
          ConfigCodes.poolOverlap,
          configMap,
          `${at}.addresses`,
          `entries of pool "${raw.name}" overlap each other in ${formatRange(overlap)}`,
        ),
      );
    }
    if (prev !== undefined && prev.family === r.family && r.first <= prev.last + 1n) {
      merged[merged.length - 1] = addressRange(r.family, prev.first, r.last > prev.last ? r.last : prev.last);
    } else {
      merged.push(r);
    }
  }
  const sa = raw.serviceAllocation;
  const an = raw.announce;
  const pool: Pool = deepFreeze({
    name: raw.name,
    addresses: merged,
    autoAssign: raw.autoAssign,
    avoidBuggyIPs: raw.avoidBuggyIPs,
    allocationOrder: raw.allocationOrder,
    ...(raw.priority !== undefined && { priority: raw.priority }),
    serviceAllocation: {
      allowCrossNamespaceSharing: sa?.allowCrossNamespaceSharing ?? false,
      ...(sa?.namespaces !== undefined && { namespaces: sa.namespaces }),
      ...(sa?.namespaceSelector !== undefined && { namespaceSelector: toSelector(sa.namespaceSelector) }),
      ...(sa?.serviceSelector !== undefined && { serviceSelector: toSelector(sa.serviceSelector) }),
    },
    announce: {
      externalIPs: an.externalIPs,
      ...(!an.layer2 && { layer2: false }),
      gratuitous: {
        intervalMs: an.gratuitous.intervalMs,
        count: an.gratuitous.count,
        ...(an.gratuitous.refreshSeconds !== undefined && { refreshSeconds: an.gratuitous.refreshSeconds }),
      },
      ...(an.interfaces !== undefined && { interfaces: an.interfaces }),
      ...(an.nodeSelector !== undefined && { nodeSelector: toSelector(an.nodeSelector) }),
    },
    configMap,
    path: at,
  });
  if (poolCapacity(pool, 4) + poolCapacity(pool, 6) === 0n) {
    problems.push(problem(ConfigCodes.poolEmpty, configMap, `${at}.addresses`, configMessages.poolEmpty(raw.name)));
  }
  return pool;
}

interface RawSelector {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?:
    { key: string; operator: LabelSelectorRequirement["operator"]; values?: string[] | undefined }[] | undefined;
}

export function toSelector(raw: RawSelector): LabelSelector {
  return {
    ...(raw.matchLabels !== undefined && { matchLabels: raw.matchLabels }),
    ...(raw.matchExpressions !== undefined && {
      matchExpressions: raw.matchExpressions.map((e) => ({
        key: e.key,
        operator: e.operator,
        ...(e.values !== undefined && { values: e.values }),
      })),
    }),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// ---- zod issues -> problems ----

/** A zod path below a pool, e.g. `.addresses[0]`. */
const formatPath = (segments: readonly PropertyKey[]): string =>
  segments.map((s) => (typeof s === "number" ? `[${s}]` : `.${String(s)}`)).join("");

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

interface ZodIssueLike {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly input?: unknown;
  readonly expected?: unknown;
  readonly keys?: readonly string[] | undefined;
  readonly params?: Readonly<Record<string, unknown>> | undefined;
  readonly origin?: string | undefined;
}

export function issueProblems(issue: ZodIssueLike, configMap: string, at: string, root: z.ZodType): ConfigProblem[] {
  const path = at + formatPath(issue.path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = knownKeys(root, issue.path);
      return (issue.keys ?? []).map((key) =>
        problem(
          ConfigCodes.unknownField,
          configMap,
          `${path}.${key}`,
          configMessages.unknownField(key, suggestField(key, known)),
        ),
      );
    }
    case "invalid_type": {
      const code = issue.input === undefined ? ConfigCodes.invalidValue : ConfigCodes.wrongType;
      const message =
        issue.input === undefined
          ? "required field is missing"
          : configMessages.wrongType(String(issue.expected), describe(issue.input));
      return [problem(code, configMap, path, message)];
    }
    case "too_small":
      if (issue.origin === "array" && issue.path.at(-1) === "addresses") {
        return [problem(ConfigCodes.poolEmpty, configMap, path, "a pool needs at least one address entry")];
      }
      return [problem(ConfigCodes.invalidValue, configMap, path, issue.message)];
    case "custom": {
      const code = issue.params?.["lodestone"];
      const known = Object.values(ConfigCodes) as readonly string[];
      return [
        problem(
          typeof code === "string" && known.includes(code) ? (code as ConfigProblem["code"]) : ConfigCodes.invalidValue,
          configMap,
          path,
          issue.message,
        ),
      ];
    }
    default:
      return [problem(ConfigCodes.invalidValue, configMap, path, issue.message.replace(/^Invalid input: /, ""))];
  }
}

/** The field names an object schema accepts at `path` (walking arrays, optionals and defaults). */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: z.core.$ZodType | undefined = schema;
  const unwrap = (s: z.core.$ZodType | undefined): z.core.$ZodType | undefined => {
    let t = s;
    while (t !== undefined && "innerType" in t._zod.def) t = (t._zod.def as { innerType: z.core.$ZodType }).innerType;
    return t;
  };
  for (const seg of path) {
    current = unwrap(current);
    if (current === undefined) return [];
    const def = current._zod.def;
    if (def.type === "array") current = (def as z.core.$ZodArrayDef).element;
    else if (def.type === "object") current = (def as z.core.$ZodObjectDef).shape[String(seg)];
    else if (def.type === "record") current = (def as z.core.$ZodRecordDef).valueType;
    else return [];
  }
  current = unwrap(current);
  return current !== undefined && current._zod.def.type === "object"
    ? Object.keys((current._zod.def as z.core.$ZodObjectDef).shape)
    : [];
}

// ---- merging ----

/**
 * Checks pools across ConfigMaps: duplicate names and overlapping addresses. ConfigMaps are taken in name order
 * (so the result never depends on watch order; MetalLB CRD pools, named `IPAddressPool ns/name`, sort first); the later pool of a clash is left out and reported, naming both
 * pools and the overlapping span. Returns only these cross-ConfigMap problems (each parse reports its own).
 */
export function mergePools(perConfigMap: readonly { readonly pools: readonly Pool[] }[]): ParsedPools {
  const all = perConfigMap
    .flatMap((c) => c.pools)
    .map((pool, order) => ({ pool, order }))
    .sort((a, b) =>
      a.pool.configMap < b.pool.configMap ? -1 : a.pool.configMap > b.pool.configMap ? 1 : a.order - b.order,
    );
  const accepted: Pool[] = [];
  const byName = new Map<string, Pool>();
  const problems: ConfigProblem[] = [];
  for (const { pool } of all) {
    const same = byName.get(pool.name);
    if (same !== undefined) {
      problems.push(
        problem(
          ConfigCodes.duplicatePool,
          pool.configMap,
          `${pool.path ?? `pool ${pool.name}`}.name`,
          configMessages.duplicatePool(pool.name, same.configMap),
        ),
      );
      continue;
    }
    const clash = findOverlap(pool, accepted);
    if (clash !== undefined) {
      problems.push(
        problem(
          ConfigCodes.poolOverlap,
          pool.configMap,
          `${pool.path ?? `pool ${pool.name}`}.addresses`,
          configMessages.poolOverlap(pool.name, clash.other.name, clash.other.configMap, formatRange(clash.span)),
        ),
      );
      continue;
    }
    byName.set(pool.name, pool);
    accepted.push(pool);
  }
  return { pools: accepted, problems };
}

function findOverlap(pool: Pool, accepted: readonly Pool[]): { other: Pool; span: AddressRange } | undefined {
  for (const other of accepted) {
    for (const a of pool.addresses) {
      for (const b of other.addresses) {
        const span = rangeOverlap(a, b);
        if (span !== undefined) return { other, span };
      }
    }
  }
  return undefined;
}
