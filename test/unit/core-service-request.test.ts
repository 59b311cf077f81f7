import { describe, expect, it } from "vitest";
import type { ServiceFields } from "../../src/core/service-request.ts";
import { serviceRequestFrom } from "../../src/core/service-request.ts";
import { texts } from "./support/core-fixtures.ts";

const base: ServiceFields = { namespace: "web", name: "front", ipFamilies: ["IPv4"], ports: [{ port: 80 }] };

describe("serviceRequestFrom", () => {
  it("reads the fields with Kubernetes defaults", () => {
    const r = serviceRequestFrom(
      {
        ...base,
        labels: { tier: "front" },
        selector: { app: "web" },
        externalTrafficPolicy: "Local",
        ipFamilyPolicy: "PreferDualStack",
        ipFamilies: ["IPv6", "IPv4"],
      },
      { tenant: "a" },
    );
    expect(r.ok && r.value).toEqual({
      request: {
        namespace: "web",
        name: "front",
        ipFamilies: [6, 4],
        ipFamilyPolicy: "PreferDualStack",
        requestedIps: [],
        ports: [{ port: 80, protocol: "TCP" }],
        externalTrafficPolicy: "Local",
        selector: { app: "web" },
        labels: { tier: "front" },
        namespaceLabels: { tenant: "a" },
      },
      deprecatedAnnotations: [],
    });
  });

  it.each([
    {
      desc: "lodestone annotations",
      annotations: {
        "lodestone.dev/load-balancer-ips": "192.0.2.1, 2001:db8::1",
        "lodestone.dev/address-pool": "p",
        "lodestone.dev/sharing-key": "k",
      },
      deprecated: [],
    },
    {
      desc: "metallb.io annotations",
      annotations: {
        "metallb.io/loadBalancerIPs": "192.0.2.1,2001:db8::1",
        "metallb.io/address-pool": "p",
        "metallb.io/allow-shared-ip": "k",
      },
      deprecated: ["metallb.io/loadBalancerIPs", "metallb.io/address-pool", "metallb.io/allow-shared-ip"],
    },
    {
      desc: "metallb.universe.tf annotations",
      annotations: {
        "metallb.universe.tf/loadBalancerIPs": "192.0.2.1,2001:db8::1",
        "metallb.universe.tf/address-pool": "p",
        "metallb.universe.tf/allow-shared-ip": "k",
      },
      deprecated: [
        "metallb.universe.tf/loadBalancerIPs",
        "metallb.universe.tf/address-pool",
        "metallb.universe.tf/allow-shared-ip",
      ],
    },
    {
      desc: "agreeing old and new forms",
      annotations: {
        "lodestone.dev/address-pool": "p",
        "metallb.universe.tf/address-pool": "p",
        "lodestone.dev/sharing-key": "k",
        "lodestone.dev/load-balancer-ips": "192.0.2.1,2001:db8::1",
      },
      deprecated: ["metallb.universe.tf/address-pool"],
    },
  ])("honours $desc", ({ annotations, deprecated }) => {
    const r = serviceRequestFrom({ ...base, annotations }, {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(texts(r.value.request.requestedIps)).toEqual(["192.0.2.1", "2001:db8::1"]);
    expect(r.value.request.requestedPool).toBe("p");
    expect(r.value.request.sharingKey).toBe("k");
    expect(r.value.deprecatedAnnotations).toEqual(deprecated);
  });

  it("takes spec.loadBalancerIP", () => {
    const r = serviceRequestFrom({ ...base, loadBalancerIP: "192.0.2.7" }, {});
    expect(r.ok && texts(r.value.request.requestedIps)).toEqual(["192.0.2.7"]);
  });

  it.each([
    {
      desc: "not an IP",
      fields: { ...base, annotations: { "lodestone.dev/load-balancer-ips": "192.0.2.1,nope" } },
      message: /"nope" is not an IP address/,
    },
    {
      desc: "two of one family",
      fields: { ...base, annotations: { "metallb.io/loadBalancerIPs": "192.0.2.1,192.0.2.2" } },
      message: /more than one IPv4 address/,
    },
    {
      desc: "disagreeing forms",
      fields: { ...base, loadBalancerIP: "192.0.2.9", annotations: { "lodestone.dev/load-balancer-ips": "192.0.2.1" } },
      message: /spec.loadBalancerIP: "192.0.2.9" disagrees with annotation lodestone.dev\/load-balancer-ips/,
    },
    {
      desc: "disagreeing pools",
      fields: { ...base, annotations: { "lodestone.dev/address-pool": "a", "metallb.io/address-pool": "b" } },
      message: /metallb.io\/address-pool: "b" disagrees/,
    },
    { desc: "unknown family", fields: { ...base, ipFamilies: ["IPv5"] }, message: /unknown family "IPv5"/ },
    { desc: "unknown policy", fields: { ...base, ipFamilyPolicy: "Sometimes" }, message: /unknown policy/ },
    {
      desc: "unknown protocol",
      fields: { ...base, ports: [{ port: 1, protocol: "ICMP" }] },
      message: /unknown protocol "ICMP"/,
    },
  ])("refuses $desc", ({ fields, message }) => {
    const r = serviceRequestFrom(fields, {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("LODESTONE_E_REQUEST_INVALID");
    expect(r.error.message).toMatch(message);
  });
});
