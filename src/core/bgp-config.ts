import { z } from "zod";
import type { ConfigProblem } from "./errors.ts";
import { ConfigCodes, configMessages, problem } from "./errors.ts";
import { type ConfigMapInput, LabelSelectorSchema, issueProblems, parseYaml, toSelector } from "./config.ts";
import { type IpAddress, formatIp, parseIp } from "./ip.ts";
import type { LabelSelector } from "./selector.ts";

/** Data key of the BGP configuration, beside `pools.yaml` in a labelled pool ConfigMap (or alone in one). */
export const BGP_KEY = "bgp.yaml";

// ---- schema (the single source of config/bgp-schema.json) ----

/** Names of peers, advertisements and profiles: they become FRR object names and metric labels. */
const OBJECT_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const objectName = z.string().regex(OBJECT_NAME, "must be 1-63 characters [A-Za-z0-9-_.]");
/** Private and public 2- and 4-byte ASNs (RFC 6793); 0 and 4294967295 are reserved (RFC 7607, RFC 7300). */
const asn = z.number().int().min(1).max(4_294_967_294);

const ipText = z.string().superRefine((text, ctx) => {
  if (parseIp(text) === undefined) ctx.addIssue({ code: "custom", message: `"${text}" is not an IP address` });
});

const STANDARD_COMMUNITY = /^(\d{1,5}):(\d{1,5})$/;
const LARGE_COMMUNITY = /^large:(\d{1,10}):(\d{1,10}):(\d{1,10})$/;
/** RFC 1997 and RFC 8326 names FRR accepts in `set community`. */
export const wellKnownCommunities = ["no-export", "no-advertise", "local-AS", "no-peer", "graceful-shutdown"] as const;

/** Pure: why a community text is not one, or undefined. Standard `A:B` (16 bits each), `large:A:B:C` (32 bits each). */
export function communityProblem(text: string): string | undefined {
  if ((wellKnownCommunities as readonly string[]).includes(text)) return undefined;
  const std = STANDARD_COMMUNITY.exec(text);
  if (std !== null) return [std[1], std[2]].every((p) => Number(p) <= 65_535) ? undefined : `"${text}": 16 bits each`;
  const large = LARGE_COMMUNITY.exec(text);
  if (large !== null) {
    return [large[1], large[2], large[3]].every((p) => Number(p) <= 4_294_967_295)
      ? undefined
      : `"${text}": 32 bits each`;
  }
  return `"${text}" is not a community: ASN:VALUE (64512:100), large:ASN:V1:V2 or one of ${wellKnownCommunities.join(", ")}`;
}

const community = z.string().superRefine((text, ctx) => {
  const p = communityProblem(text);
  if (p !== undefined) ctx.addIssue({ code: "custom", message: p });
});

export const BgpPeerSchema = z
  .strictObject({
    name: objectName.describe("Unique peer name; advertisements name peers by it, metrics label them with it"),
    peerAddress: ipText.describe("The router's address (IPv4 or IPv6)"),
    peerASN: asn.describe("The router's AS number"),
    myASN: asn.describe("This cluster's AS number; the same as peerASN makes it iBGP"),
    peerPort: z.number().int().min(1).max(65_535).default(179),
    holdTime: z
      .number()
      .int()
      .refine((s) => s === 0 || s >= 3, "0 (no hold timer) or at least 3 seconds (RFC 4271 4.2)")
      .default(90)
      .describe("Seconds; the router's own may be lower and wins (RFC 4271)"),
    keepaliveTime: z.number().int().min(1).optional().describe("Seconds; default a third of holdTime"),
    passwordSecret: z
      .strictObject({
        name: z.string().min(1),
        key: z.string().min(1).default("password"),
      })
      .optional()
      .describe("TCP MD5 password (RFC 2385) from a Secret in the daemon's namespace"),
    password: z
      .string()
      .regex(/^\S{1,80}$/, "1-80 characters without spaces (RFC 2385 keys; FRR takes one word)")
      .optional()
      .describe("TCP MD5 password in the clear (MetalLB <= 0.12); prefer passwordSecret"),
    ebgpMultiHop: z.boolean().default(false).describe("The router is more than one hop away"),
    sourceAddress: ipText.optional().describe("Local address the session is opened from"),
    routerID: ipText.optional().describe("BGP router ID (IPv4); default: FRR picks one of the node's addresses"),
    nodeSelector: LabelSelectorSchema.optional().describe("Only nodes with matching labels peer with this router"),
    bfdProfile: objectName.optional().describe("A bfdProfiles name: BFD runs on this session"),
  })
  .describe("A router to peer with");

export const BgpAdvertisementSchema = z
  .strictObject({
    name: objectName,
    pools: z.array(z.string().min(1)).optional().describe("Pools whose Service addresses are advertised; none: all"),
    aggregationLength: z.number().int().min(0).max(32).default(32).describe("IPv4 prefix length advertised"),
    aggregationLengthV6: z.number().int().min(0).max(128).default(128).describe("IPv6 prefix length advertised"),
    localPref: z.number().int().min(0).max(4_294_967_295).optional().describe("LOCAL_PREF (iBGP peers only)"),
    communities: z.array(community).optional().describe("Standard (64512:100), large (large:64512:1:2) or well-known"),
    nodeSelector: LabelSelectorSchema.optional().describe("Only nodes with matching labels advertise"),
    peers: z.array(objectName).optional().describe("Only to these peers (by name); none: every peer"),
  })
  .describe("Which Service addresses go to which peers, with which attributes");

export const BfdProfileSchema = z
  .strictObject({
    name: objectName,
    receiveInterval: z.number().int().min(10).max(60_000).default(300).describe("Milliseconds"),
    transmitInterval: z.number().int().min(10).max(60_000).default(300).describe("Milliseconds"),
    detectMultiplier: z.number().int().min(2).max(255).default(3),
    echoMode: z.boolean().default(false).describe("BFD echo (RFC 5880 6.4); the router must loop echo packets"),
    echoInterval: z.number().int().min(10).max(60_000).optional().describe("Milliseconds"),
    passiveMode: z.boolean().default(false).describe("Wait for the router to start the BFD session"),
    minimumTtl: z.number().int().min(1).max(254).optional().describe("Multi-hop sessions: lowest TTL accepted"),
  })
  .describe("BFD timers for peers that name it");

export const BgpConfigSchema = z
  .strictObject({
    bgpPeers: z.array(BgpPeerSchema).optional(),
    bgpAdvertisements: z.array(BgpAdvertisementSchema).optional(),
    bfdProfiles: z.array(BfdProfileSchema).optional(),
  })
  .describe("Lodestone BGP configuration (ConfigMap data key bgp.yaml)");

/** JSON Schema of `bgp.yaml`, as written to config/bgp-schema.json by `npm run gen:schema`. */
export const bgpJsonSchema = (): unknown => z.toJSONSchema(BgpConfigSchema, { io: "input" });

// ---- validated values ----

export interface BgpPeer {
  readonly name: string;
  readonly address: IpAddress;
  readonly peerASN: number;
  readonly myASN: number;
  readonly port: number;
  readonly holdTime: number;
  readonly keepaliveTime: number;
  readonly password?: { readonly secret: string; readonly key: string } | { readonly text: string };
  readonly ebgpMultiHop: boolean;
  readonly sourceAddress?: IpAddress;
  readonly routerID?: IpAddress;
  readonly nodeSelector?: LabelSelector;
  readonly bfdProfile?: string;
  /** "namespace/name" of the ConfigMap, and the path in it (for problems found later). */
  readonly configMap: string;
  readonly path: string;
}

export interface BgpAdvertisement {
  readonly name: string;
  readonly pools?: readonly string[];
  readonly aggregationLength: number;
  readonly aggregationLengthV6: number;
  readonly localPref?: number;
  readonly communities: readonly string[];
  readonly nodeSelector?: LabelSelector;
  readonly peers?: readonly string[];
  readonly configMap: string;
  readonly path: string;
}

export interface BfdProfile {
  readonly name: string;
  readonly receiveInterval: number;
  readonly transmitInterval: number;
  readonly detectMultiplier: number;
  readonly echoMode: boolean;
  readonly echoInterval?: number;
  readonly passiveMode: boolean;
  readonly minimumTtl?: number;
  readonly configMap: string;
  readonly path: string;
}

export interface BgpConfig {
  readonly peers: readonly BgpPeer[];
  readonly advertisements: readonly BgpAdvertisement[];
  readonly bfdProfiles: readonly BfdProfile[];
}

export const emptyBgpConfig: BgpConfig = Object.freeze({ peers: [], advertisements: [], bfdProfiles: [] });

export const isBgpConfigured = (c: BgpConfig): boolean => c.peers.length > 0;

export interface ParsedBgp {
  /** Objects without problems only; one with a problem is left out whole. */
  readonly config: BgpConfig;
  readonly problems: readonly ConfigProblem[];
}

// ---- parsing ----

const withName = (at: string, item: unknown): string => {
  const name = typeof item === "object" && item !== null ? (item as Record<string, unknown>)["name"] : undefined;
  return typeof name === "string" && name !== "" ? `${at} (${name})` : at;
};

/** Parses the `bgp.yaml` text of one ConfigMap; references between its objects are checked by mergeBgp. */
export function parseBgpText(text: string, configMap: string): ParsedBgp {
  const problems: ConfigProblem[] = [];
  const parsed = parseYaml(text, configMap, BGP_KEY, problems);
  if (parsed === undefined) return { config: emptyBgpConfig, problems };
  const doc = parsed.doc ?? {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    problems.push(
      problem(ConfigCodes.wrongType, configMap, BGP_KEY, configMessages.wrongType("a mapping", typeof doc)),
    );
    return { config: emptyBgpConfig, problems };
  }
  // The top level first, so an unknown section is named; the sections item by item, so one bad peer leaves the rest.
  const top = BgpConfigSchema.pick({}).safeParse(
    Object.fromEntries(
      Object.entries(doc).filter(([k]) => !["bgpPeers", "bgpAdvertisements", "bfdProfiles"].includes(k)),
    ),
  );
  if (!top.success) {
    for (const issue of top.error.issues) problems.push(...issueProblems(issue, configMap, BGP_KEY, BgpConfigSchema));
  }
  const record = doc as Record<string, unknown>;
  const section = <S extends z.ZodType, T>(key: string, schema: S, build: (v: z.output<S>, at: string) => T): T[] => {
    const list = record[key];
    if (list === undefined || list === null) return [];
    const at0 = `${BGP_KEY}.${key}`;
    if (!Array.isArray(list)) {
      problems.push(problem(ConfigCodes.wrongType, configMap, at0, configMessages.wrongType("a list", typeof list)));
      return [];
    }
    const out: T[] = [];
    list.forEach((item: unknown, i) => {
      const at = withName(`${at0}[${i}]`, item);
      const r = schema.safeParse(item, { reportInput: true });
      if (!r.success) {
        for (const issue of r.error.issues) problems.push(...issueProblems(issue, configMap, at, schema));
        return;
      }
      const before = problems.length;
      const value = build(r.data, at);
      if (problems.length === before) out.push(value);
    });
    return out;
  };
  const peers = section("bgpPeers", BgpPeerSchema, (p, at): BgpPeer => {
    const address = parseIp(p.peerAddress) as IpAddress;
    if (p.password !== undefined && p.passwordSecret !== undefined) {
      problems.push(
        problem(ConfigCodes.invalidValue, configMap, `${at}.password`, "give password or passwordSecret, not both"),
      );
    }
    const keepalive = p.keepaliveTime ?? Math.max(1, Math.floor(p.holdTime / 3));
    if (p.holdTime !== 0 && keepalive >= p.holdTime) {
      problems.push(problem(ConfigCodes.invalidValue, configMap, `${at}.keepaliveTime`, "must be less than holdTime"));
    }
    const routerID = p.routerID === undefined ? undefined : parseIp(p.routerID);
    if (routerID !== undefined && routerID.family !== 4) {
      problems.push(problem(ConfigCodes.invalidValue, configMap, `${at}.routerID`, "a router ID is an IPv4 address"));
    }
    const source = p.sourceAddress === undefined ? undefined : parseIp(p.sourceAddress);
    if (source !== undefined && source.family !== address.family) {
      problems.push(
        problem(ConfigCodes.invalidValue, configMap, `${at}.sourceAddress`, "must be of the peerAddress's family"),
      );
    }
    return {
      name: p.name,
      address,
      peerASN: p.peerASN,
      myASN: p.myASN,
      port: p.peerPort,
      holdTime: p.holdTime,
      keepaliveTime: keepalive,
      ...(p.passwordSecret !== undefined && {
        password: { secret: p.passwordSecret.name, key: p.passwordSecret.key },
      }),
      ...(p.password !== undefined && { password: { text: p.password } }),
      ebgpMultiHop: p.ebgpMultiHop,
      ...(source !== undefined && { sourceAddress: source }),
      ...(routerID !== undefined && { routerID }),
      ...(p.nodeSelector !== undefined && { nodeSelector: toSelector(p.nodeSelector) }),
      ...(p.bfdProfile !== undefined && { bfdProfile: p.bfdProfile }),
      configMap,
      path: at,
    };
  });
  const advertisements = section("bgpAdvertisements", BgpAdvertisementSchema, (a, at): BgpAdvertisement => ({
    name: a.name,
    ...(a.pools !== undefined && { pools: a.pools }),
    aggregationLength: a.aggregationLength,
    aggregationLengthV6: a.aggregationLengthV6,
    ...(a.localPref !== undefined && { localPref: a.localPref }),
    communities: [...new Set(a.communities ?? [])].sort(),
    ...(a.nodeSelector !== undefined && { nodeSelector: toSelector(a.nodeSelector) }),
    ...(a.peers !== undefined && { peers: a.peers }),
    configMap,
    path: at,
  }));
  const bfdProfiles = section("bfdProfiles", BfdProfileSchema, (b, at): BfdProfile => ({
    name: b.name,
    receiveInterval: b.receiveInterval,
    transmitInterval: b.transmitInterval,
    detectMultiplier: b.detectMultiplier,
    echoMode: b.echoMode,
    ...(b.echoInterval !== undefined && { echoInterval: b.echoInterval }),
    passiveMode: b.passiveMode,
    ...(b.minimumTtl !== undefined && { minimumTtl: b.minimumTtl }),
    configMap,
    path: at,
  }));
  return { config: deepFreeze({ peers, advertisements, bfdProfiles }), problems };
}

/** The BGP part of one ConfigMap, or undefined when it has no `bgp.yaml`. */
export function parseBgpConfigMap(cm: ConfigMapInput): ParsedBgp | undefined {
  const text = cm.data?.[BGP_KEY];
  return text === undefined ? undefined : parseBgpText(text, `${cm.namespace}/${cm.name}`);
}

/**
 * Joins the BGP objects of every ConfigMap (taken in ConfigMap name order, so the result never depends on watch
 * order) and checks what spans them: duplicate names (the later one is left out), two peers on one address, and
 * references to peers, BFD profiles and pools that do not exist (the object naming them is left out).
 */
export function mergeBgp(parts: readonly BgpConfig[], poolNames: ReadonlySet<string>): ParsedBgp {
  const problems: ConfigProblem[] = [];
  const byConfigMap = <T extends { readonly configMap: string }>(list: readonly T[]): T[] =>
    list
      .map((v, i) => ({ v, i }))
      .sort((a, b) => (a.v.configMap < b.v.configMap ? -1 : a.v.configMap > b.v.configMap ? 1 : a.i - b.i))
      .map((x) => x.v);
  const unique = <T extends { readonly name: string; readonly configMap: string; readonly path: string }>(
    list: readonly T[],
    kind: string,
  ): T[] => {
    const seen = new Map<string, T>();
    const out: T[] = [];
    for (const v of byConfigMap(list)) {
      const first = seen.get(v.name);
      if (first !== undefined) {
        problems.push(
          problem(
            ConfigCodes.bgpDuplicate,
            v.configMap,
            `${v.path}.name`,
            `${kind} name "${v.name}" is already defined in ConfigMap ${first.configMap} (${first.path}); this one is ignored`,
          ),
        );
        continue;
      }
      seen.set(v.name, v);
      out.push(v);
    }
    return out;
  };
  const profiles = unique(
    parts.flatMap((p) => p.bfdProfiles),
    "BFD profile",
  );
  const profileNames = new Set(profiles.map((p) => p.name));
  const addresses = new Map<string, BgpPeer>();
  const peers = unique(
    parts.flatMap((p) => p.peers),
    "peer",
  ).filter((p) => {
    if (p.bfdProfile !== undefined && !profileNames.has(p.bfdProfile)) {
      problems.push(missing(p, "bfdProfile", `BFD profile "${p.bfdProfile}"`));
      return false;
    }
    const key = `${formatIp(p.address)}:${p.port}`;
    const same = addresses.get(key);
    if (same !== undefined) {
      problems.push(
        problem(
          ConfigCodes.bgpDuplicate,
          p.configMap,
          `${p.path}.peerAddress`,
          `peer "${same.name}" (ConfigMap ${same.configMap}) already peers with ${key}; this one is ignored`,
        ),
      );
      return false;
    }
    addresses.set(key, p);
    return true;
  });
  const peerNames = new Set(peers.map((p) => p.name));
  const advertisements = unique(
    parts.flatMap((p) => p.advertisements),
    "advertisement",
  ).filter((a) => {
    const badPeer = a.peers?.find((n) => !peerNames.has(n));
    if (badPeer !== undefined) {
      problems.push(missing(a, "peers", `peer "${badPeer}"`));
      return false;
    }
    const badPool = a.pools?.find((n) => !poolNames.has(n));
    if (badPool !== undefined) {
      problems.push(missing(a, "pools", `pool "${badPool}"`));
      return false;
    }
    return true;
  });
  return { config: deepFreeze({ peers, advertisements, bfdProfiles: profiles }), problems };
}

const missing = (o: { configMap: string; path: string }, field: string, what: string): ConfigProblem =>
  problem(
    ConfigCodes.bgpReference,
    o.configMap,
    `${o.path}.${field}`,
    `${what} does not exist; this object is ignored`,
  );

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
