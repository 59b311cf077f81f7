import { formatIp, ip, parseIp, type Family, type IpAddress } from "../core/ip.ts";
import { dropKey, isObject, jsonEqual, str, type Json, type JsonObject } from "./json.ts";
import type { Cause } from "./api-errors.ts";

/** Service CIDRs of the sandbox cluster (dual-stack, like a kubeadm default plus an IPv6 range). */
export interface ServiceNetwork {
  readonly v4: { readonly base: IpAddress; readonly size: bigint };
  readonly v6: { readonly base: IpAddress; readonly size: bigint };
}

/** 10.96.0.0/12 and fd00:10:96::/112. */
export const defaultServiceNetwork: ServiceNetwork = {
  v4: { base: ip(4, 0x0a600000n), size: 1n << 20n },
  v6: { base: ip(6, 0xfd000010009600000000000000000000n), size: 1n << 16n },
};

const NODE_PORT_MIN = 30000;
const NODE_PORT_MAX = 32767;
const TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const POLICIES = ["SingleStack", "PreferDualStack", "RequireDualStack"];
const PROTOCOLS = ["SCTP", "TCP", "UDP"];
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const familyOf = (name: string): Family | undefined => (name === "IPv4" ? 4 : name === "IPv6" ? 6 : undefined);

const required = (field: string): Cause => ({ reason: "FieldValueRequired", field, message: "Required value" });
const bad = (field: string, value: Json | undefined, why: string): Cause => ({
  reason: "FieldValueInvalid",
  field,
  message: `Invalid value: ${JSON.stringify(value ?? null)}: ${why}`,
});
const forbidden = (field: string, why: string): Cause => ({
  reason: "FieldValueForbidden",
  field,
  message: `Forbidden: ${why}`,
});
const unsupported = (field: string, value: Json | undefined, allowed: readonly string[]): Cause => ({
  reason: "FieldValueNotSupported",
  field,
  message: `Unsupported value: ${JSON.stringify(value ?? null)}: supported values: ${allowed.map((a) => `"${a}"`).join(", ")}`,
});

/**
 * The Service registry's allocators and rules: cluster IPs from the service CIDRs, node ports from
 * 30000-32767, defaulting and validation as kube-apiserver does them for the fields Lodestone cares about.
 */
export class ServiceRules {
  readonly #net: ServiceNetwork;
  readonly #ips = new Set<string>();
  readonly #ports = new Set<number>();
  #next4 = 10n;
  #next6 = 10n;
  #nextPort = NODE_PORT_MIN;

  constructor(net: ServiceNetwork = defaultServiceNetwork) {
    this.#net = net;
  }

  #inRange(a: IpAddress): boolean {
    const r = a.family === 4 ? this.#net.v4 : this.#net.v6;
    return a.value > r.base.value && a.value < r.base.value + r.size - 1n;
  }

  #allocateIp(family: Family): string | undefined {
    const r = family === 4 ? this.#net.v4 : this.#net.v6;
    for (let tries = 0n; tries < r.size; tries++) {
      let n = family === 4 ? this.#next4 : this.#next6;
      if (n >= r.size - 1n) n = 1n;
      const text = formatIp(ip(family, r.base.value + n));
      if (family === 4) this.#next4 = n + 1n;
      else this.#next6 = n + 1n;
      if (!this.#ips.has(text)) {
        this.#ips.add(text);
        return text;
      }
    }
    return undefined;
  }

  #allocatePort(): number | undefined {
    for (let i = 0; i <= NODE_PORT_MAX - NODE_PORT_MIN; i++) {
      const p = this.#nextPort;
      this.#nextPort = p >= NODE_PORT_MAX ? NODE_PORT_MIN : p + 1;
      if (!this.#ports.has(p)) {
        this.#ports.add(p);
        return p;
      }
    }
    return undefined;
  }

  /** Marks what an existing object holds (the pre-created `kubernetes` Service). */
  reserve(svc: JsonObject): void {
    const spec = isObject(svc["spec"]) ? svc["spec"] : {};
    for (const c of Array.isArray(spec["clusterIPs"]) ? spec["clusterIPs"] : [])
      if (typeof c === "string") this.#ips.add(c);
    for (const p of ports(spec)) if (typeof p["nodePort"] === "number") this.#ports.add(p["nodePort"]);
  }

  release(svc: JsonObject): void {
    const spec = isObject(svc["spec"]) ? svc["spec"] : {};
    for (const c of Array.isArray(spec["clusterIPs"]) ? spec["clusterIPs"] : [])
      if (typeof c === "string") this.#ips.delete(c);
    for (const p of ports(spec)) if (typeof p["nodePort"] === "number") this.#ports.delete(p["nodePort"]);
  }

  /**
   * Defaults and validates a Service being created (old undefined) or updated, allocating what it needs.
   * On failure nothing stays allocated. `svc` is a fresh copy and is changed in place.
   */
  prepare(svc: JsonObject, old: JsonObject | undefined): Cause[] {
    const causes: Cause[] = [];
    const name = str(isObject(svc["metadata"]) ? svc["metadata"]["name"] : undefined) ?? "";
    if (old === undefined && name !== "" && (!DNS1035.test(name) || name.length > 63))
      causes.push(
        bad(
          "metadata.name",
          name,
          "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
      );
    const spec: JsonObject = isObject(svc["spec"]) ? svc["spec"] : {};
    svc["spec"] = spec;
    const oldSpec: JsonObject = old !== undefined && isObject(old["spec"]) ? old["spec"] : {};
    spec["type"] ??= "ClusterIP";
    const type = spec["type"];
    if (typeof type !== "string" || !TYPES.includes(type)) {
      causes.push(unsupported("spec.type", type, TYPES));
      return causes;
    }
    const oldType = str(oldSpec["type"]);
    if (old !== undefined && oldType !== type) this.#dropTypeDependent(spec, oldSpec, type);
    if (old !== undefined) this.#carryAllocated(spec, oldSpec, type);

    if (type === "ExternalName") {
      if (typeof spec["externalName"] !== "string" || spec["externalName"] === "")
        causes.push(required("spec.externalName"));
      for (const f of ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"])
        if (f in spec && !(f === "clusterIP" && spec[f] === "")) {
          if (old === undefined) causes.push(forbidden(`spec.${f}`, "may not be set for ExternalName services"));
        }
      if (causes.length > 0) return causes;
      delete spec["clusterIP"];
      delete spec["clusterIPs"];
      delete spec["ipFamilies"];
      delete spec["ipFamilyPolicy"];
    }
    spec["sessionAffinity"] ??= "None";
    const list = ports(spec);
    const headless = spec["clusterIP"] === "None";
    if (list.length === 0 && !headless && type !== "ExternalName") causes.push(required("spec.ports"));
    const names = new Set<string>();
    list.forEach((p, i) => {
      const at = `spec.ports[${i}]`;
      p["protocol"] ??= "TCP";
      if (typeof p["protocol"] !== "string" || !PROTOCOLS.includes(p["protocol"]))
        causes.push(unsupported(`${at}.protocol`, p["protocol"], PROTOCOLS));
      const port = p["port"];
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
        causes.push(bad(`${at}.port`, port, "must be between 1 and 65535, inclusive"));
      if (type !== "ExternalName") p["targetPort"] ??= port ?? null;
      const pname = p["name"];
      if (list.length > 1 && (typeof pname !== "string" || pname === "")) causes.push(required(`${at}.name`));
      if (typeof pname === "string" && pname !== "") {
        if (names.has(pname))
          causes.push({ reason: "FieldValueDuplicate", field: `${at}.name`, message: `Duplicate value: "${pname}"` });
        names.add(pname);
      }
      if ("nodePort" in p && p["nodePort"] !== null && type !== "NodePort" && type !== "LoadBalancer")
        causes.push(forbidden(`${at}.nodePort`, `may not be used when \`type\` is '${type}'`));
    });
    if (type !== "ExternalName") spec["internalTrafficPolicy"] ??= "Cluster";
    if (type === "NodePort" || type === "LoadBalancer") spec["externalTrafficPolicy"] ??= "Cluster";
    if (type === "LoadBalancer") spec["allocateLoadBalancerNodePorts"] ??= true;
    else if ("allocateLoadBalancerNodePorts" in spec && old === undefined)
      causes.push(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"));

    const cls = spec["loadBalancerClass"];
    if (cls !== undefined && cls !== null) {
      if (type !== "LoadBalancer")
        causes.push(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"));
      else if (
        typeof cls !== "string" ||
        !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(
          cls,
        )
      )
        causes.push(
          bad("spec.loadBalancerClass", cls, "must be a label-style name, optionally prefixed (e.g. 'example.com/lb')"),
        );
    }
    if (
      old !== undefined &&
      oldType === "LoadBalancer" &&
      type === "LoadBalancer" &&
      !jsonEqual(oldSpec["loadBalancerClass"] ?? null, cls ?? null)
    )
      causes.push(bad("spec.loadBalancerClass", cls ?? null, "may not change once set"));
    if (
      typeof spec["loadBalancerIP"] === "string" &&
      spec["loadBalancerIP"] !== "" &&
      parseIp(spec["loadBalancerIP"]) === undefined
    )
      causes.push(bad("spec.loadBalancerIP", spec["loadBalancerIP"], "must be a valid IP address"));
    if (causes.length > 0) return causes;
    if (type === "ExternalName") return causes;

    const ipCauses = this.#clusterIps(spec, oldSpec, old !== undefined, headless);
    if (ipCauses.length > 0) return ipCauses;
    return this.#nodePorts(spec, oldSpec, type);
  }

  /** What kube-apiserver's dropTypeDependentFields does when `type` changes and the user left a field as it was. */
  #dropTypeDependent(spec: JsonObject, oldSpec: JsonObject, type: string): void {
    const same = (f: string): boolean => jsonEqual(spec[f], oldSpec[f]);
    if (type !== "NodePort" && type !== "LoadBalancer") {
      const np = (s: JsonObject): string => JSON.stringify(ports(s).map((p) => p["nodePort"] ?? null));
      if (np(spec) === np(oldSpec)) for (const p of ports(spec)) delete p["nodePort"];
      if (same("externalTrafficPolicy")) delete spec["externalTrafficPolicy"];
    }
    if (type !== "LoadBalancer") {
      for (const f of ["loadBalancerClass", "allocateLoadBalancerNodePorts", "healthCheckNodePort"])
        if (same(f)) dropKey(spec, f);
    }
  }

  /** A PUT that leaves out clusterIP or nodePort keeps the allocated ones (kubectl replace, apply). */
  #carryAllocated(spec: JsonObject, oldSpec: JsonObject, type: string): void {
    if (type === "ExternalName") return;
    if ((spec["clusterIP"] === undefined || spec["clusterIP"] === "") && spec["clusterIPs"] === undefined) {
      if (oldSpec["clusterIP"] !== undefined) spec["clusterIP"] = oldSpec["clusterIP"];
      if (oldSpec["clusterIPs"] !== undefined) spec["clusterIPs"] = oldSpec["clusterIPs"];
      if (spec["ipFamilies"] === undefined && oldSpec["ipFamilies"] !== undefined)
        spec["ipFamilies"] = oldSpec["ipFamilies"];
      if (spec["ipFamilyPolicy"] === undefined && oldSpec["ipFamilyPolicy"] !== undefined)
        spec["ipFamilyPolicy"] = oldSpec["ipFamilyPolicy"];
    }
    if (type === "NodePort" || type === "LoadBalancer") {
      const oldPorts = ports(oldSpec);
      for (const p of ports(spec)) {
        if (p["nodePort"] !== undefined && p["nodePort"] !== 0) continue;
        const prev = oldPorts.find(
          (o) => o["port"] === p["port"] && (o["protocol"] ?? "TCP") === (p["protocol"] ?? "TCP"),
        );
        if (prev !== undefined && typeof prev["nodePort"] === "number") p["nodePort"] = prev["nodePort"];
      }
    }
  }

  #clusterIps(spec: JsonObject, oldSpec: JsonObject, update: boolean, headless: boolean): Cause[] {
    const causes: Cause[] = [];
    const policy = spec["ipFamilyPolicy"] ?? null;
    if (policy !== null && (typeof policy !== "string" || !POLICIES.includes(policy)))
      return [unsupported("spec.ipFamilyPolicy", policy, POLICIES)];
    const famNames = Array.isArray(spec["ipFamilies"]) ? spec["ipFamilies"] : [];
    const families: Family[] = [];
    for (const [i, f] of famNames.entries()) {
      const fam = typeof f === "string" ? familyOf(f) : undefined;
      if (fam === undefined) causes.push(unsupported(`spec.ipFamilies[${i}]`, f, ["IPv4", "IPv6"]));
      else if (families.includes(fam))
        causes.push({
          reason: "FieldValueDuplicate",
          field: `spec.ipFamilies[${i}]`,
          message: `Duplicate value: "${String(f)}"`,
        });
      else families.push(fam);
    }
    if (families.length > 2)
      causes.push(bad("spec.ipFamilies", famNames, "may specify no more than one IP for each IP family"));
    let ips: string[] = Array.isArray(spec["clusterIPs"])
      ? spec["clusterIPs"].filter((c): c is string => typeof c === "string")
      : [];
    const single = spec["clusterIP"];
    if (ips.length === 0 && typeof single === "string" && single !== "") ips = [single];
    if (typeof single === "string" && single !== "" && ips[0] !== single)
      causes.push(
        bad("spec.clusterIPs", spec["clusterIPs"] ?? null, "must have the same value as spec.clusterIP at index 0"),
      );
    if (causes.length > 0) return causes;
    const isHeadless = headless || ips[0] === "None";
    if (!isHeadless) {
      for (const [i, text] of ips.entries()) {
        const a = parseIp(text);
        if (a === undefined)
          return [bad(`spec.clusterIPs[${i}]`, text, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")];
        if (families[i] !== undefined && families[i] !== a.family)
          return [
            bad(
              `spec.clusterIPs[${i}]`,
              text,
              `expected an IPv${families[i]} value as indicated by \`ipFamilies[${i}]\``,
            ),
          ];
        if (families[i] === undefined) families[i] = a.family;
      }
    }
    if (families.length === 0) families.push(4);
    const effective =
      policy ??
      (isHeadless && spec["selector"] === undefined ? "RequireDualStack" : families.length === 2 ? "" : "SingleStack");
    if (effective === "")
      return [
        bad(
          "spec.ipFamilyPolicy",
          null,
          "must be RequireDualStack or PreferDualStack when multiple IP families are specified",
        ),
      ];
    if (effective === "SingleStack" && families.length > 1)
      return [
        bad(
          "spec.ipFamilies",
          famNames,
          "when spec.ipFamilyPolicy is SingleStack, only one IP family may be specified",
        ),
      ];
    if (effective !== "SingleStack" && families.length === 1) families.push(families[0] === 4 ? 6 : 4);
    spec["ipFamilyPolicy"] = effective;
    spec["ipFamilies"] = families.map((f) => (f === 4 ? "IPv4" : "IPv6"));
    if (isHeadless) {
      spec["clusterIP"] = "None";
      spec["clusterIPs"] = ["None"];
      return [];
    }
    const oldIps = Array.isArray(oldSpec["clusterIPs"]) ? oldSpec["clusterIPs"] : [];
    if (update) {
      for (const [i, text] of ips.entries())
        if (oldIps[i] !== undefined && oldIps[i] !== text)
          return [bad(`spec.clusterIPs[${i}]`, text, "may not change once set")];
    }
    const fresh: string[] = [];
    for (const [i, text] of ips.entries()) {
      if (oldIps.includes(text)) continue;
      const a = parseIp(text);
      if (a === undefined || !this.#inRange(a) || this.#ips.has(text)) {
        for (const f of fresh) this.#ips.delete(f);
        return [
          bad(
            `spec.clusterIPs[${i}]`,
            text,
            this.#ips.has(text)
              ? "failed to allocate IP " + text + ": provided IP is already allocated"
              : "failed to allocate IP " + text + ": the provided network does not match the current range",
          ),
        ];
      }
      this.#ips.add(text);
      fresh.push(text);
    }
    for (const [i, family] of families.entries()) {
      if (i < ips.length) continue;
      const got = this.#allocateIp(family);
      if (got === undefined) {
        for (const f of fresh) this.#ips.delete(f);
        return [bad(`spec.clusterIPs[${i}]`, null, "failed to allocate IP: range is full")];
      }
      fresh.push(got);
      ips.push(got);
    }
    // Downgrade from dual-stack to single-stack releases the secondary address.
    ips = ips.slice(0, families.length);
    for (const o of oldIps) if (typeof o === "string" && !ips.includes(o)) this.#ips.delete(o);
    spec["clusterIP"] = ips[0] ?? "";
    spec["clusterIPs"] = ips;
    return [];
  }

  #nodePorts(spec: JsonObject, oldSpec: JsonObject, type: string): Cause[] {
    const oldPorts = new Set(
      ports(oldSpec)
        .map((p) => p["nodePort"])
        .filter((n): n is number => typeof n === "number"),
    );
    const want = type === "NodePort" || (type === "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] !== false);
    const fresh: number[] = [];
    const undo = (): void => fresh.forEach((p) => this.#ports.delete(p));
    for (const [i, p] of ports(spec).entries()) {
      const np = p["nodePort"];
      if (typeof np === "number" && np !== 0) {
        if (oldPorts.has(np)) continue;
        if (np < NODE_PORT_MIN || np > NODE_PORT_MAX || this.#ports.has(np)) {
          undo();
          return [
            bad(
              `spec.ports[${i}].nodePort`,
              np,
              this.#ports.has(np)
                ? "provided port is already allocated"
                : `provided port is not in the valid range. The range of valid ports is ${NODE_PORT_MIN}-${NODE_PORT_MAX}`,
            ),
          ];
        }
        this.#ports.add(np);
        fresh.push(np);
      } else if (want) {
        const got = this.#allocatePort();
        if (got === undefined) {
          undo();
          return [bad(`spec.ports[${i}].nodePort`, null, "failed to allocate a nodePort: range is full")];
        }
        fresh.push(got);
        p["nodePort"] = got;
      }
    }
    const now = new Set(ports(spec).map((p) => p["nodePort"]));
    for (const o of oldPorts) if (!now.has(o)) this.#ports.delete(o);
    return [];
  }
}

function ports(spec: JsonObject): JsonObject[] {
  const p = spec["ports"];
  return Array.isArray(p) ? p.filter(isObject) : [];
}

const IP_MODES = ["Proxy", "VIP"];

/** `status.loadBalancer` as ValidateLoadBalancerStatus checks it; defaults ipMode to VIP where an ip is set. */
export function validateServiceStatus(svc: JsonObject): Cause[] {
  const spec = isObject(svc["spec"]) ? svc["spec"] : {};
  const status = isObject(svc["status"]) ? svc["status"] : {};
  const lb = isObject(status["loadBalancer"]) ? status["loadBalancer"] : {};
  const ingress = lb["ingress"];
  if (ingress === undefined || ingress === null) return [];
  if (!Array.isArray(ingress)) return [bad("status.loadBalancer.ingress", ingress, "must be a list")];
  if (spec["type"] !== "LoadBalancer" && ingress.length > 0)
    return [forbidden("status.loadBalancer.ingress", "may only be used when `spec.type` is 'LoadBalancer'")];
  const causes: Cause[] = [];
  ingress.forEach((entry, i) => {
    const at = `status.loadBalancer.ingress[${i}]`;
    if (!isObject(entry)) {
      causes.push(bad(at, entry, "must be an object"));
      return;
    }
    const ipText = entry["ip"];
    if (ipText !== undefined && ipText !== "") {
      if (typeof ipText !== "string" || parseIp(ipText) === undefined)
        causes.push(bad(`${at}.ip`, ipText, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"));
      else entry["ipMode"] ??= "VIP";
    } else if (entry["ipMode"] !== undefined)
      causes.push(forbidden(`${at}.ipMode`, "may not be specified when `ip` is not set"));
    if (entry["ipMode"] !== undefined && (typeof entry["ipMode"] !== "string" || !IP_MODES.includes(entry["ipMode"])))
      causes.push(unsupported(`${at}.ipMode`, entry["ipMode"], IP_MODES));
    const host = entry["hostname"];
    if (host !== undefined && host !== "") {
      if (typeof host !== "string" || !DNS1123_SUBDOMAIN.test(host))
        causes.push(
          bad(
            `${at}.hostname`,
            host,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
          ),
        );
      else if (parseIp(host) !== undefined)
        causes.push(bad(`${at}.hostname`, host, "must be a DNS name, not an IP address"));
    }
  });
  return causes;
}
