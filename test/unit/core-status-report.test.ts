import { describe, expect, it } from "vitest";
import { parsePoolConfigMap } from "../../src/core/config.ts";
import { parseIp } from "../../src/core/ip.ts";
import type { IpAddress } from "../../src/core/ip.ts";
import { buildStatus, renderStatusTable, statusJson } from "../../src/core/status-report.ts";

const pools = parsePoolConfigMap({
  namespace: "lodestone-system",
  name: "pools",
  labels: { "lodestone.dev/pools": "true" },
  data: {
    "pools.yaml": [
      "- name: lan",
      "  addresses: [192.0.2.0/28, 2001:db8::/64]",
      "- name: reserved",
      "  autoAssign: false",
      "  addresses: [198.51.100.10-198.51.100.19]",
    ].join("\n"),
  },
}).pools;

const ips = (...texts: string[]): IpAddress[] => texts.map((t) => parseIp(t)!);

describe("lodestone status report", () => {
  it("parses the fixture pools", () => {
    expect(pools.map((p) => p.name)).toEqual(["lan", "reserved"]);
  });

  it("counts pool usage per family, a shared IP once, and never overflows a /64", () => {
    const report = buildStatus(pools, [
      { namespace: "demo", name: "dns-tcp", ips: ips("192.0.2.1"), pool: "lan" },
      { namespace: "demo", name: "dns-udp", ips: ips("192.0.2.1"), pool: "lan" },
      { namespace: "demo", name: "dual", ips: ips("2001:db8::1", "192.0.2.2") },
      { namespace: "demo", name: "vip", ips: ips("198.51.100.10"), pool: "reserved" },
    ]);
    expect(report.pools).toEqual([
      { pool: "lan", family: 4, total: 16n, inUse: 2, available: 14n },
      { pool: "lan", family: 6, total: 2n ** 64n, inUse: 1, available: 2n ** 64n - 1n },
      { pool: "reserved", family: 4, total: 10n, inUse: 1, available: 9n },
    ]);
    expect(report.services.find((s) => s.service === "demo/dual")).toMatchObject({ pool: "lan", state: "allocated" });
  });

  it.each([
    { desc: "no IP and no failure is pending", failure: undefined, state: "pending" },
    { desc: "no IP with a failure is failed, with the reason", failure: "pool lan is exhausted", state: "failed" },
  ])("$desc", ({ failure, state }) => {
    const report = buildStatus(pools, [
      { namespace: "demo", name: "web", ips: [], ...(failure === undefined ? {} : { failure }) },
    ]);
    expect(report.services[0]).toMatchObject({ state, ips: [], pool: "-" });
    expect(renderStatusTable(report)).toContain(failure === undefined ? "<pending>" : `failed: ${failure}`);
  });

  it.each([
    { desc: "announced: the node, no reason", node: "node-a", why: "no node may announce 192.0.2.3", detail: "" },
    {
      desc: "not announced: the speakers' reason",
      node: undefined,
      why: "no node may announce 192.0.2.3: 3 without an interface for the IP (n1, n2, n3)",
      detail: "not announced: no node may announce 192.0.2.3: 3 without an interface for the IP (n1, n2, n3)",
    },
  ])("an allocated Service: $desc", ({ node, why, detail }) => {
    const report = buildStatus(pools, [
      {
        namespace: "demo",
        name: "web",
        ips: ips("192.0.2.3"),
        notAnnounced: why,
        ...(node === undefined ? {} : { announcingNode: node }),
      },
    ]);
    expect(report.services[0]).toMatchObject({ state: "allocated", detail, announcingNode: node ?? "-" });
    if (detail !== "") expect(renderStatusTable(report)).toContain(`allocated: ${detail}`);
  });

  it("puts an IP outside every pool on its Service without counting it anywhere", () => {
    const report = buildStatus(pools, [{ namespace: "demo", name: "old", ips: ips("203.0.113.5") }]);
    expect(report.services[0]?.pool).toBe("-");
    expect(report.pools.every((p) => p.inUse === 0)).toBe(true);
  });

  it("renders a table and JSON with sizes as strings, and lists config problems", () => {
    const report = buildStatus(
      pools,
      [{ namespace: "demo", name: "web", ips: ips("192.0.2.3"), pool: "lan", announcingNode: "node-a" }],
      [
        {
          code: "LODESTONE_E_BAD_ADDRESS",
          configMap: "lodestone-system/broken",
          path: "pools.yaml[0]",
          message: "bad",
        },
      ],
    );
    const text = renderStatusTable(report);
    expect(text).toMatch(/^POOL\s+FAMILY\s+TOTAL\s+IN USE\s+AVAILABLE$/m);
    expect(text).toMatch(/^lan\s+IPv6\s+18446744073709551616\s+0\s+18446744073709551616$/m);
    expect(text).toMatch(/^demo\/web\s+192\.0\.2\.3\s+lan\s+node-a\s+allocated$/m);
    expect(text).toContain("ConfigMap lodestone-system/broken: pools.yaml[0]: bad");
    const json = JSON.parse(JSON.stringify(statusJson(report))) as { pools: { total: string }[] };
    expect(json.pools[1]?.total).toBe("18446744073709551616");
  });
});
