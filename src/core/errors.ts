import type { Family } from "./ip.ts";
import { familyName } from "./ip.ts";

/** Success or a typed failure; core functions return this instead of throwing. */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): { readonly ok: true; readonly value: T } => ({ ok: true, value });
export const err = <E>(error: E): { readonly ok: false; readonly error: E } => ({ ok: false, error });

/**
 * The stable catalogue. Codes are part of the user interface: docs, Kubernetes Events and the
 * `allocation_failures_total{reason}` metric reuse them, so never rename one; add new ones.
 */
export const ConfigCodes = {
  yamlSyntax: "LODESTONE_E_YAML_SYNTAX",
  wrongType: "LODESTONE_E_CONFIG_TYPE",
  invalidValue: "LODESTONE_E_CONFIG_VALUE",
  unknownField: "LODESTONE_E_UNKNOWN_FIELD",
  badAddress: "LODESTONE_E_BAD_ADDRESS",
  rangeReversed: "LODESTONE_E_RANGE_REVERSED",
  rangeMixedFamily: "LODESTONE_E_RANGE_MIXED_FAMILY",
  poolEmpty: "LODESTONE_E_POOL_EMPTY",
  duplicatePool: "LODESTONE_E_DUPLICATE_POOL",
  poolOverlap: "LODESTONE_E_POOL_OVERLAP",
  badSelector: "LODESTONE_E_BAD_SELECTOR",
  unsupported: "LODESTONE_E_UNSUPPORTED",
  noPoolData: "LODESTONE_E_NO_POOL_DATA",
  bgpDuplicate: "LODESTONE_E_BGP_DUPLICATE",
  bgpReference: "LODESTONE_E_BGP_REFERENCE",
} as const;
export type ConfigCode = (typeof ConfigCodes)[keyof typeof ConfigCodes];

export const AllocationCodes = {
  noPools: "LODESTONE_E_NO_POOLS",
  poolNotFound: "LODESTONE_E_POOL_NOT_FOUND",
  poolExhausted: "LODESTONE_E_POOL_EXHAUSTED",
  ipNotInPool: "LODESTONE_E_IP_NOT_IN_POOL",
  ipReserved: "LODESTONE_E_IP_RESERVED",
  ipInUse: "LODESTONE_E_IP_IN_USE",
  namespaceNotAllowed: "LODESTONE_E_NAMESPACE_NOT_ALLOWED",
  serviceNotAllowed: "LODESTONE_E_SERVICE_NOT_ALLOWED",
  familyUnavailable: "LODESTONE_E_FAMILY_UNAVAILABLE",
  sharingConflict: "LODESTONE_E_SHARING_CONFLICT",
  requestInvalid: "LODESTONE_E_REQUEST_INVALID",
} as const;
export type AllocationCode = (typeof AllocationCodes)[keyof typeof AllocationCodes];

/** One problem in a pool ConfigMap. `configMap` is "namespace/name"; `path` names the field, e.g. `pools.yaml[0] (web).addresses[1]`. */
export interface ConfigProblem {
  readonly code: ConfigCode;
  readonly configMap: string;
  readonly path: string;
  readonly message: string;
}

export const problem = (code: ConfigCode, configMap: string, path: string, message: string): ConfigProblem =>
  Object.freeze({ code, configMap, path, message });

/**
 * Warnings are said but change nothing: the pool stays in force and the ConfigMap is not stale. Their own codes
 * (`LODESTONE_W_…`), so no count of problems or `stale` flag can take one for a problem.
 */
export const ConfigWarningCodes = {
  unusualPoolName: "LODESTONE_W_POOL_NAME",
  nodeAddressInPool: "LODESTONE_W_NODE_ADDRESS_IN_POOL",
} as const;
export type ConfigWarningCode = (typeof ConfigWarningCodes)[keyof typeof ConfigWarningCodes];

/** One warning about a pool ConfigMap, placed like a problem. */
export interface ConfigWarning {
  readonly code: ConfigWarningCode;
  readonly configMap: string;
  readonly path: string;
  readonly message: string;
}

export const warning = (code: ConfigWarningCode, configMap: string, path: string, message: string): ConfigWarning =>
  Object.freeze({ code, configMap, path, message });

/** Readable texts for config problems, so the same mistake reads the same wherever it is found. */
export const configMessages = {
  yamlSyntax: (line: number | undefined, detail: string): string =>
    `malformed YAML${line === undefined ? "" : ` at line ${line}`}: ${detail}`,
  wrongType: (expected: string, got: string): string => `expected ${expected}, got ${got}`,
  unknownField: (field: string, suggestion: string | undefined): string =>
    `unknown field "${field}"${suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`}`,
  badAddress: (text: string): string =>
    `"${text}" is not an IP address, a CIDR (192.0.2.0/24, 2001:db8::/64) or a range (192.0.2.10-192.0.2.20)`,
  rangeReversed: (text: string): string => `range "${text}" ends before it starts`,
  rangeMixedFamily: (text: string): string => `range "${text}" mixes IPv4 and IPv6`,
  poolEmpty: (pool: string): string => `pool "${pool}" has no usable addresses`,
  duplicatePool: (pool: string, firstConfigMap: string): string =>
    `pool name "${pool}" is already defined in ConfigMap ${firstConfigMap}; this one is ignored`,
  poolOverlap: (pool: string, otherPool: string, otherConfigMap: string, span: string): string =>
    `addresses of pool "${pool}" overlap pool "${otherPool}" (ConfigMap ${otherConfigMap}) in ${span}; pool "${pool}" is ignored`,
  unsupported: (what: string, why: string): string => `${what} is not supported: ${why}`,
  unusualPoolName: (pool: string): string =>
    `pool name "${pool}" is not 1-63 of A-Za-z0-9-_.: it works in this MetalLB config, but pools.yaml would refuse it; rename it (and the annotations naming it) when moving the pool`,
  nodeAddressInPool: (addr: string, span: string, node: string, type: string): string =>
    `${addr} (in ${span}) is node ${node}'s ${type}; a Service given it would be answered by two hosts: take it out of the pool`,
  noPoolData: (): string => `no pool data: expected key "pools.yaml" (Lodestone) or "config" (MetalLB <= 0.12)`,
};

/** Why a Service cannot get (or keep) an address. Each carries the facts its message is built from. */
export type AllocationError =
  | { readonly code: typeof AllocationCodes.noPools; readonly message: string }
  | { readonly code: typeof AllocationCodes.poolNotFound; readonly message: string; readonly pool: string }
  | {
      readonly code: typeof AllocationCodes.poolExhausted;
      readonly message: string;
      readonly pools: readonly string[];
      readonly family: Family;
    }
  | { readonly code: typeof AllocationCodes.ipNotInPool; readonly message: string; readonly ip: string }
  | {
      readonly code: typeof AllocationCodes.ipReserved;
      readonly message: string;
      readonly ip: string;
      readonly pool: string;
    }
  | {
      readonly code: typeof AllocationCodes.ipInUse;
      readonly message: string;
      readonly ip: string;
      readonly holder: string;
    }
  | {
      readonly code: typeof AllocationCodes.namespaceNotAllowed;
      readonly message: string;
      readonly pool: string;
      readonly namespace: string;
    }
  | { readonly code: typeof AllocationCodes.serviceNotAllowed; readonly message: string; readonly pool: string }
  | {
      readonly code: typeof AllocationCodes.familyUnavailable;
      readonly message: string;
      readonly family: Family;
      readonly pools: readonly string[];
    }
  | {
      readonly code: typeof AllocationCodes.sharingConflict;
      readonly message: string;
      readonly ip: string;
      readonly holder: string;
      readonly detail: string;
    }
  | { readonly code: typeof AllocationCodes.requestInvalid; readonly message: string; readonly field: string };

const list = (names: readonly string[]): string => names.map((n) => `"${n}"`).join(", ");

/** Builders for every refusal: the only place their wording lives. */
export const refusal = {
  noPools: (): AllocationError => ({
    code: AllocationCodes.noPools,
    message: "no address pool offers automatic assignment; ask for a pool or an IP explicitly, or add a pool",
  }),
  poolNotFound: (pool: string): AllocationError => ({
    code: AllocationCodes.poolNotFound,
    message: `requested pool "${pool}" does not exist`,
    pool,
  }),
  poolExhausted: (pools: readonly string[], family: Family): AllocationError => ({
    code: AllocationCodes.poolExhausted,
    message: `no free ${familyName(family)} address left in pool${pools.length === 1 ? "" : "s"} ${list(pools)}`,
    pools,
    family,
  }),
  ipNotInPool: (ip: string, pool?: string): AllocationError => ({
    code: AllocationCodes.ipNotInPool,
    message: pool === undefined ? `${ip} is not in any address pool` : `${ip} is not in the requested pool "${pool}"`,
    ip,
  }),
  ipReserved: (ip: string, pool: string): AllocationError => ({
    code: AllocationCodes.ipReserved,
    message: `${ip} ends in .0 or .255, which pool "${pool}" avoids (avoidBuggyIPs)`,
    ip,
    pool,
  }),
  ipInUse: (ip: string, holder: string): AllocationError => ({
    code: AllocationCodes.ipInUse,
    message: `${ip} is in use by Service ${holder} and the two may not share it (no common sharing key)`,
    ip,
    holder,
  }),
  namespaceNotAllowed: (pool: string, namespace: string): AllocationError => ({
    code: AllocationCodes.namespaceNotAllowed,
    message: `pool "${pool}" is not available to namespace "${namespace}" (serviceAllocation.namespaces / namespaceSelector)`,
    pool,
    namespace,
  }),
  serviceNotAllowed: (pool: string): AllocationError => ({
    code: AllocationCodes.serviceNotAllowed,
    message: `pool "${pool}" is not available to this Service: its labels do not match serviceAllocation.serviceSelector`,
    pool,
  }),
  familyUnavailable: (family: Family, pools: readonly string[]): AllocationError => ({
    code: AllocationCodes.familyUnavailable,
    message:
      pools.length === 0
        ? `no pool available to this Service has ${familyName(family)} addresses`
        : `pool${pools.length === 1 ? "" : "s"} ${list(pools)} ha${pools.length === 1 ? "s" : "ve"} no ${familyName(family)} addresses`,
    family,
    pools,
  }),
  sharingConflict: (ip: string, holder: string, detail: string): AllocationError => ({
    code: AllocationCodes.sharingConflict,
    message: `${ip} cannot be shared with Service ${holder}: ${detail}`,
    ip,
    holder,
    detail,
  }),
  requestInvalid: (field: string, detail: string): AllocationError => ({
    code: AllocationCodes.requestInvalid,
    message: `${field}: ${detail}`,
    field,
  }),
};

/** Layer-2 announcement failures (src/net): what keeps this node from answering for its IPs. */
export const NetCodes = {
  /** No CAP_NET_RAW: AF_PACKET sockets are refused (run as root or grant NET_RAW). */
  permission: "LODESTONE_E_NET_PERMISSION",
  /** The AF_PACKET addon was not built (no compiler at `npm ci`). */
  addonMissing: "LODESTONE_E_NET_ADDON_MISSING",
  /** An interface to announce on is missing or unusable. */
  interfaceUnusable: "LODESTONE_E_NET_INTERFACE",
  /** The interface scan (`ip -j addr`) failed. */
  scanFailed: "LODESTONE_E_NET_SCAN",
  /** Any other socket error (open, bind, filter, multicast join), with the errno name in the message. */
  socket: "LODESTONE_E_NET_SOCKET",
} as const;
export type NetCode = (typeof NetCodes)[keyof typeof NetCodes];

export interface NetError {
  readonly code: NetCode;
  readonly message: string;
}

/** BGP mode (src/app/bgp-component.ts, src/net/frr.ts): what keeps this node's routes from its routers. */
export const BgpCodes = {
  /** vtysh or frr-reload.py is missing, or FRR's daemons do not answer on their vty sockets. */
  frrUnavailable: "LODESTONE_E_FRR_UNAVAILABLE",
  /** frr-reload.py refused the rendered configuration (the previous one stays in force). */
  frrReload: "LODESTONE_E_FRR_RELOAD",
  /** A peer's passwordSecret is missing, or lacks the key. */
  secret: "LODESTONE_E_BGP_SECRET",
  /** The OPEN was refused: wrong peerASN or myASN. */
  peerASN: "LODESTONE_E_BGP_PEER_ASN",
  /** Never connected with a TCP MD5 password set: unreachable or a password mismatch (indistinguishable here). */
  peerAuth: "LODESTONE_E_BGP_PEER_AUTH",
  /** Never connected: no TCP connection to the peer's BGP port. */
  peerUnreachable: "LODESTONE_E_BGP_PEER_UNREACHABLE",
  /** The session was up and went down. */
  sessionDown: "LODESTONE_E_BGP_SESSION_DOWN",
} as const;
export type BgpCode = (typeof BgpCodes)[keyof typeof BgpCodes];

export interface BgpError {
  readonly code: BgpCode;
  readonly message: string;
}
