import { describe, expect, it, vi } from "vitest";
import { readFileSync } from "node:fs";
import { lodestone } from "./support/run-cli.ts";
import { checkConfigTexts, command, formatSize } from "../../src/cli/check-config.ts";

const sample = (name: string) => new URL(`../../config/samples/${name}`, import.meta.url).pathname;

const lodestoneCm = (name: string, pools: string, extra = "") => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: ls
  labels: {lodestone.dev/pools: "true"}${extra}
data:
  pools.yaml: |
${pools
  .split("\n")
  .map((l) => `    ${l}`)
  .join("\n")}
`;

describe("checkConfigTexts", () => {
  it.each([
    {
      desc: "a valid dual-stack ConfigMap",
      files: [{ name: "a.yaml", text: lodestoneCm("p", '- {name: d, addresses: [192.0.2.0/24, "2001:db8::/64"]}') }],
      exit: 0,
      lines: [
        /^Pools \(1\):$/,
        /^ {2}d {2}ConfigMap ls\/p {2}IPv4 256 {2}IPv6 2\^64 {2}auto-assign$/,
        /^Configuration is valid\.$/,
      ],
    },
    {
      desc: "a problem, in the documented format",
      files: [{ name: "a.yaml", text: lodestoneCm("p", "- {name: d, addresses: [192.0.2.0/33]}") }],
      exit: 1,
      lines: [
        /^a\.yaml: ConfigMap ls\/p: pools\.yaml\[0\] \(d\)\.addresses\[0\]: "192\.0\.2\.0\/33" is not an IP address.* \[LODESTONE_E_BAD_ADDRESS\]$/,
      ],
    },
    {
      desc: "overlap across two files",
      files: [
        { name: "a.yaml", text: lodestoneCm("p", "- {name: x, addresses: [192.0.2.0/24]}") },
        { name: "b.yaml", text: lodestoneCm("q", "- {name: y, addresses: [192.0.2.7]}") },
      ],
      exit: 1,
      lines: [
        /^b\.yaml: ConfigMap ls\/q: pools\.yaml\[0\] \(y\)\.addresses: addresses of pool "y" overlap pool "x" \(ConfigMap ls\/p\) in 192\.0\.2\.7;/,
      ],
    },
    {
      desc: "multi-document file with other kinds and a List",
      files: [
        {
          name: "all.yaml",
          text: `kind: Namespace\nmetadata: {name: ls}\n---\nkind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: other}\n  data: {x: y}\n---\n${lodestoneCm("p", "- {name: d, addresses: [192.0.2.1]}")}`,
        },
      ],
      exit: 0,
      lines: [/^Pools \(1\):$/],
    },
    {
      desc: "malformed manifest YAML, with the line",
      files: [{ name: "bad.yaml", text: "kind: ConfigMap\ndata: [\n" }],
      exit: 1,
      lines: [/^bad\.yaml: line \d+: malformed YAML: .* \[LODESTONE_E_YAML_SYNTAX\]$/],
    },
    {
      desc: "no pool ConfigMap at all",
      files: [{ name: "x.yaml", text: "kind: Namespace\nmetadata: {name: a}\n" }],
      exit: 1,
      lines: [/^x\.yaml: no pool ConfigMap found/],
    },
    {
      desc: "MetalLB >= 0.13 IPAddressPool and L2Advertisement are read beside a ConfigMap; BGP kinds are not supported",
      files: [
        {
          name: "crs.yaml",
          text: `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: first, namespace: metallb-system}\nspec: {addresses: [192.0.2.0/24]}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: quiet, namespace: metallb-system}\nspec: {addresses: [203.0.113.0/30]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: [first]}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: peer}\n---\n${lodestoneCm("p", "- {name: d, addresses: [198.51.100.0/24]}")}`,
        },
      ],
      exit: 1,
      lines: [
        /^crs\.yaml: BGPPeer default\/peer: MetalLB custom resource metallb\.io\/v1beta2 is not supported: .* \[LODESTONE_E_UNSUPPORTED\]$/,
        /^ {2}d +ConfigMap ls\/p +IPv4 256/,
        /^ {2}first +IPAddressPool metallb-system\/first +IPv4 256 +IPv6 0 +auto-assign$/,
        /^ {2}quiet .*not announced \(no L2Advertisement selects it\)$/,
        /^1 problem found\.$/,
      ],
    },
    {
      desc: "a broken IPAddressPool is reported at its field",
      files: [
        {
          name: "bad-crs.yaml",
          text: `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: metallb-system}\nspec: {addresses: [192.0.2.300/24]}\n`,
        },
      ],
      exit: 1,
      lines: [/^bad-crs\.yaml: IPAddressPool metallb-system\/bad: spec\.addresses\[0\]: .*\[LODESTONE_E_/],
    },
    {
      desc: "a warning is printed, and the configuration stays valid (exit 0)",
      files: [
        {
          name: "m.yaml",
          text: 'kind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - {name: "my pool", protocol: layer2, addresses: [192.0.2.0/24], auto-assign: no}\n',
        },
      ],
      exit: 0,
      lines: [
        /^m\.yaml: ConfigMap metallb-system\/config: warning: config\.address-pools\[0\] \(my pool\)\.name: pool name "my pool" .* \[LODESTONE_W_POOL_NAME\]$/,
        /^ {2}my pool {2}ConfigMap metallb-system\/config {2}IPv4 256 {2}IPv6 0 {2}on request only$/,
        /^Configuration is valid \(1 warning\)\.$/,
      ],
    },
    {
      desc: "unlabelled Lodestone ConfigMap",
      files: [
        { name: "a.yaml", text: "kind: ConfigMap\nmetadata: {name: p, namespace: ls}\ndata:\n  pools.yaml: '[]'\n" },
      ],
      exit: 1,
      lines: [/metadata\.labels\.lodestone\.dev\/pools: the daemon reads only ConfigMaps labelled/],
    },
  ])("$desc", ({ files, exit, lines }) => {
    const report = checkConfigTexts(files);
    expect(report.exitCode).toBe(exit);
    for (const re of lines)
      expect(
        report.lines.some((l) => re.test(l)),
        `${re} in\n${report.lines.join("\n")}`,
      ).toBe(true);
  });

  it.each([
    { n: 256n, text: "256" },
    { n: 1n << 64n, text: "2^64" },
    { n: (1n << 64n) - 1n, text: "18446744073709551615" },
    { n: 0n, text: "0" },
  ])("formats size $text", ({ n, text }) => {
    expect(formatSize(n)).toBe(text);
  });
});

describe("lodestone check-config", () => {
  async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const errs: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
    const error = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errs.push(a.join(" ")));
    try {
      return { code: await command.run(args), stdout: out.join("\n"), stderr: errs.join("\n") };
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  }

  it.each([
    { desc: "valid sample", args: [sample("pools.yaml")], code: 0, stdout: /Configuration is valid/ },
    {
      desc: "MetalLB legacy sample (bgp reported)",
      args: [sample("metallb-legacy.yaml")],
      code: 1,
      stdout: /"routed" with protocol bgp is not supported/,
    },
    { desc: "broken sample", args: [sample("broken.yaml")], code: 1, stdout: /9 problems found/ },
    { desc: "no file", args: [], code: 2, stderr: /no FILE given/ },
    {
      desc: "missing file",
      args: ["/nonexistent/pools.yaml"],
      code: 2,
      stderr: /cannot read \/nonexistent\/pools\.yaml: no such file/,
    },
    { desc: "a directory", args: ["/"], code: 2, stderr: /cannot read \// },
    { desc: "unknown flag", args: ["--frobnicate"], code: 2, stderr: /unknown flag --frobnicate/ },
    {
      desc: "help",
      args: ["--help"],
      code: 0,
      stdout: /Usage: lodestone check-config \[--kubeconfig PATH \| --offline\] FILE/,
    },
  ])("$desc exits $code", async ({ args, code, stdout, stderr }) => {
    const r = await inProcess(args);
    expect(r.code).toBe(code);
    if (stdout) expect(r.stdout).toMatch(stdout);
    if (stderr) expect(r.stderr).toMatch(stderr);
  });

  it.each([
    { args: [sample("broken.yaml")], code: 1 },
    { args: ["--frobnicate"], code: 2 },
  ])("the real binary exits $code without a stack trace", async ({ args, code }) => {
    const r = await lodestone("check-config", ...args);
    expect(r.code).toBe(code);
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("checkConfigTexts: bgp.yaml", () => {
  it("config/samples/bgp.yaml is valid and summarised with its peers", () => {
    const r = checkConfigTexts([{ name: "bgp.yaml", text: readFileSync(sample("bgp.yaml"), "utf8") }]);
    expect(r.exitCode).toBe(0);
    expect(r.lines).toContain("BGP: 2 peers, 1 advertisement, 1 BFD profile");
    expect(r.lines).toContain("  peer tor-a: AS 64512 at 192.0.2.1, my AS 64513, BFD fast");
  });

  it("a ConfigMap with only bgp.yaml is read; its problems name the object and field, references across files", () => {
    const bgpOnly = `apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: ls}
data:
  bgp.yaml: |
    bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, bfdProfile: nope}]
    bgpAdvertisements: [{name: x, pools: [ghost]}, {name: y, pools: [d]}]
`;
    const r = checkConfigTexts([
      { name: "pools.yaml", text: lodestoneCm("p", "- {name: d, addresses: [192.0.2.0/24]}") },
      { name: "bgp.yaml", text: bgpOnly },
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.lines).toEqual(
      expect.arrayContaining([
        'bgp.yaml: ConfigMap ls/b: bgp.yaml.bgpPeers[0] (a).bfdProfile: BFD profile "nope" does not exist; this object is ignored [LODESTONE_E_BGP_REFERENCE]',
        'bgp.yaml: ConfigMap ls/b: bgp.yaml.bgpAdvertisements[0] (x).pools: pool "ghost" does not exist; this object is ignored [LODESTONE_E_BGP_REFERENCE]',
        "BGP: 0 peers, 1 advertisement, 0 BFD profiles",
        "2 problems found.",
      ]),
    );
  });
});

describe("checkConfigTexts: node addresses", () => {
  const files = [
    { name: "a.yaml", text: lodestoneCm("p", "- {name: lan, addresses: [192.0.2.0/28]}") },
    {
      name: "crs.yaml",
      text: `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: crd, namespace: metallb-system}\nspec: {addresses: ["2001:db8::/64"]}\n`,
    },
  ];
  const node = (name: string, type: string, address: string) => ({ name, addresses: [{ type, address }] });

  it("a node address in a ConfigMap pool or an IPAddressPool is a warning at the pool, exit 0", () => {
    const r = checkConfigTexts(files, {
      kind: "listed",
      nodes: [
        node("w1", "InternalIP", "192.0.2.15"),
        node("w2", "ExternalIP", "2001:db8::1"),
        node("w3", "InternalIP", "192.0.2.16"),
      ],
    });
    expect(r.exitCode).toBe(0);
    expect(r.lines).toEqual(
      expect.arrayContaining([
        "a.yaml: ConfigMap ls/p: warning: pools.yaml[0] (lan).addresses: 192.0.2.15 (in 192.0.2.0/28) is node w1's InternalIP; a Service given it would be answered by two hosts: take it out of the pool [LODESTONE_W_NODE_ADDRESS_IN_POOL]",
        "crs.yaml: IPAddressPool metallb-system/crd: warning: spec.addresses: 2001:db8::1 (in 2001:db8::/64) is node w2's ExternalIP; a Service given it would be answered by two hosts: take it out of the pool [LODESTONE_W_NODE_ADDRESS_IN_POOL]",
        "Node addresses: 3 node(s) checked against the pools.",
        "Configuration is valid (2 warnings).",
      ]),
    );
  });

  it("skipped: one line says why, nothing else changes", () => {
    const plain = checkConfigTexts(files);
    const r = checkConfigTexts(files, { kind: "skipped", why: "no cluster" });
    expect(r.lines.filter((l) => !plain.lines.includes(l))).toEqual([
      "node addresses not checked: no cluster",
      "", // the blank line before the summary, as after problems and warnings
    ]);
    expect(r.exitCode).toBe(plain.exitCode);
  });
});
