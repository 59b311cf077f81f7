import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { bgpJsonSchema, communityProblem, mergeBgp, parseBgpText } from "../../src/core/bgp-config.ts";
import { parsePoolConfigMap } from "../../src/core/config.ts";
import { formatIp } from "../../src/core/ip.ts";

const CM = "lodestone-system/bgp";
const parse = (text: string) => parseBgpText(text, CM);

const FULL = `
bgpPeers:
  - name: tor-a
    peerAddress: 192.0.2.1
    peerASN: 64512
    myASN: 64513
    peerPort: 1179
    holdTime: 9
    passwordSecret: {name: bgp-auth}
    ebgpMultiHop: true
    sourceAddress: 192.0.2.11
    routerID: 192.0.2.11
    nodeSelector: {matchLabels: {rack: a}}
    bfdProfile: fast
  - name: tor-a-v6
    peerAddress: "2001:db8::1"
    peerASN: 64512
    myASN: 64513
bgpAdvertisements:
  - name: public
    pools: [web]
    aggregationLength: 24
    localPref: 200
    communities: ["64512:100", "large:64512:1:2", no-export, "64512:100"]
    peers: [tor-a]
bfdProfiles:
  - name: fast
    receiveInterval: 100
    transmitInterval: 100
    echoMode: true
`;

describe("parseBgpText", () => {
  it("reads every field and applies defaults", () => {
    const r = parse(FULL);
    expect(r.problems).toEqual([]);
    const [a, b] = r.config.peers;
    expect(a).toMatchObject({
      name: "tor-a",
      peerASN: 64512,
      myASN: 64513,
      port: 1179,
      holdTime: 9,
      keepaliveTime: 3,
      password: { secret: "bgp-auth", key: "password" },
      ebgpMultiHop: true,
      nodeSelector: { matchLabels: { rack: "a" } },
      bfdProfile: "fast",
      path: "bgp.yaml.bgpPeers[0] (tor-a)",
    });
    expect(formatIp(a!.address)).toBe("192.0.2.1");
    expect(b).toMatchObject({ port: 179, holdTime: 90, keepaliveTime: 30, ebgpMultiHop: false });
    expect(r.config.advertisements[0]).toMatchObject({
      aggregationLength: 24,
      aggregationLengthV6: 128,
      localPref: 200,
      communities: ["64512:100", "large:64512:1:2", "no-export"],
    });
    expect(r.config.bfdProfiles[0]).toMatchObject({
      receiveInterval: 100,
      transmitInterval: 100,
      detectMultiplier: 3,
      echoMode: true,
      passiveMode: false,
    });
    expect(Object.isFrozen(r.config.peers[0])).toBe(true);
  });

  it.each([
    {
      desc: "unknown section, with a suggestion",
      text: "bgpPeer: []",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "bgp.yaml.bgpPeer",
      msg: /did you mean "bgpPeers"/,
    },
    {
      desc: "unknown peer field",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, holdtime: 9}]",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "bgp.yaml.bgpPeers[0] (a).holdtime",
      msg: /holdTime/,
    },
    {
      desc: "bad address",
      text: "bgpPeers: [{name: a, peerAddress: router, peerASN: 64512, myASN: 64513}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).peerAddress",
      msg: /not an IP/,
    },
    {
      desc: "ASN out of range",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 0, myASN: 64513}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).peerASN",
      msg: /1/,
    },
    {
      desc: "missing ASN",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).myASN",
      msg: /missing/,
    },
    {
      desc: "hold time 1",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, holdTime: 1}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).holdTime",
      msg: /RFC 4271/,
    },
    {
      desc: "keepalive not below hold",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, holdTime: 9, keepaliveTime: 9}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).keepaliveTime",
      msg: /less than holdTime/,
    },
    {
      desc: "password with a space",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, password: 'a b'}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).password",
      msg: /without spaces/,
    },
    {
      desc: "v6 router ID",
      text: "bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, routerID: '2001:db8::1'}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpPeers[0] (a).routerID",
      msg: /IPv4/,
    },
    {
      desc: "bad community",
      text: "bgpAdvertisements: [{name: x, communities: ['70000:1']}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpAdvertisements[0] (x).communities[0]",
      msg: /16 bits/,
    },
    {
      desc: "aggregation beyond 32",
      text: "bgpAdvertisements: [{name: x, aggregationLength: 33}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bgpAdvertisements[0] (x).aggregationLength",
      msg: /32/,
    },
    {
      desc: "BFD multiplier 1",
      text: "bfdProfiles: [{name: f, detectMultiplier: 1}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "bgp.yaml.bfdProfiles[0] (f).detectMultiplier",
      msg: /2/,
    },
    { desc: "a list at the top", text: "- a", code: "LODESTONE_E_CONFIG_TYPE", path: "bgp.yaml", msg: /mapping/ },
    { desc: "YAML syntax", text: "bgpPeers: [", code: "LODESTONE_E_YAML_SYNTAX", path: "bgp.yaml", msg: /malformed/ },
  ])("$desc: names the object and field", ({ text, code, path, msg }) => {
    const r = parse(text);
    expect(r.problems).toContainEqual(expect.objectContaining({ code, path, configMap: CM }));
    expect(r.problems.find((p) => p.path === path)?.message).toMatch(msg);
  });

  it("leaves out only the object with a problem, and reports all problems at once", () => {
    const r = parse(`
bgpPeers:
  - {name: good, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}
  - {name: bad, peerAddress: nope, peerASN: 64512, myASN: 99999999999}
`);
    expect(r.config.peers.map((p) => p.name)).toEqual(["good"]);
    expect(r.problems.map((p) => p.path).sort()).toEqual([
      "bgp.yaml.bgpPeers[1] (bad).myASN",
      "bgp.yaml.bgpPeers[1] (bad).peerAddress",
    ]);
  });

  it("an empty document configures nothing", () => {
    expect(parse("")).toEqual({ config: { peers: [], advertisements: [], bfdProfiles: [] }, problems: [] });
  });
});

describe("communityProblem", () => {
  it.each([
    ["64512:100", undefined],
    ["65535:65535", undefined],
    ["large:4200000000:1:2", undefined],
    ["no-export", undefined],
    ["65536:1", /16 bits/],
    ["large:4294967296:1:1", /32 bits/],
    ["64512", /not a community/],
  ])("%s", (text, want) => {
    const p = communityProblem(text);
    if (want === undefined) expect(p).toBeUndefined();
    else expect(p).toMatch(want);
  });
});

describe("mergeBgp", () => {
  const part = (text: string, cm = CM) => parseBgpText(text, cm).config;
  it("drops references to missing peers, profiles and pools, naming the field", () => {
    const r = mergeBgp(
      [
        part(`
bgpPeers: [{name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, bfdProfile: nope}]
bgpAdvertisements:
  - {name: x, peers: [ghost]}
  - {name: y, pools: [missing]}
  - {name: z, pools: [web]}
`),
      ],
      new Set(["web"]),
    );
    expect(r.config.peers).toEqual([]);
    expect(r.config.advertisements.map((a) => a.name)).toEqual(["z"]);
    expect(r.problems.map((p) => [p.code, p.path])).toEqual([
      ["LODESTONE_E_BGP_REFERENCE", "bgp.yaml.bgpPeers[0] (a).bfdProfile"],
      ["LODESTONE_E_BGP_REFERENCE", "bgp.yaml.bgpAdvertisements[0] (x).peers"],
      ["LODESTONE_E_BGP_REFERENCE", "bgp.yaml.bgpAdvertisements[1] (y).pools"],
    ]);
  });

  it("keeps the first of two names or addresses by ConfigMap name, whatever the watch order", () => {
    const a = part("bgpPeers: [{name: tor, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}]", "ns/a");
    const b = part(
      "bgpPeers: [{name: tor, peerAddress: 192.0.2.2, peerASN: 64512, myASN: 64513}, {name: other, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}]",
      "ns/b",
    );
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const r = mergeBgp(order, new Set());
      expect(r.config.peers.map((p) => `${p.configMap} ${p.name}`)).toEqual(["ns/a tor"]);
      expect(r.problems.map((p) => [p.code, p.configMap, p.path])).toEqual([
        ["LODESTONE_E_BGP_DUPLICATE", "ns/b", "bgp.yaml.bgpPeers[0] (tor).name"],
        ["LODESTONE_E_BGP_DUPLICATE", "ns/b", "bgp.yaml.bgpPeers[1] (other).peerAddress"],
      ]);
    }
  });
});

describe("pools.yaml beside bgp.yaml", () => {
  it("announce.layer2: false is kept on the pool; a ConfigMap with only bgp.yaml has pool data enough", () => {
    const r = parsePoolConfigMap({
      namespace: "lodestone-system",
      name: "p",
      labels: { "lodestone.dev/pools": "true" },
      data: { "pools.yaml": "- {name: web, addresses: [203.0.113.0/28], announce: {layer2: false}}" },
    });
    expect(r.problems).toEqual([]);
    expect(r.pools[0]?.announce.layer2).toBe(false);
    const only = parsePoolConfigMap({ namespace: "lodestone-system", name: "b", data: { "bgp.yaml": "" } });
    expect(only.problems).toEqual([]);
  });

  it("config/bgp-schema.json is generated from the schema (npm run gen:schema)", () => {
    const file = JSON.parse(readFileSync(new URL("../../config/bgp-schema.json", import.meta.url), "utf8")) as unknown;
    expect(file).toEqual(bgpJsonSchema());
  });
});
