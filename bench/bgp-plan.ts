// The BGP component's pass alone, without I/O: N dual-stack Services (a quarter of them Local, half of those with
// an endpoint here) planned for two peers (IPv4, IPv6) and rendered as frr.conf, as src/app/bgp-component.ts runs
// it on every change. Prints the time per pass at N and 2N (linear: the ratio near 2) and the text size; the last
// line is JSON.   node bench/bgp-plan.ts --services 10000
import { parseArgs } from "node:util";
import { mergeBgp, parseBgpText } from "../src/core/bgp-config.ts";
import { renderFrrConfig } from "../src/core/bgp-frr.ts";
import { type BgpService, planBgp } from "../src/core/bgp-plan.ts";
import { parsePoolConfigMap } from "../src/core/config.ts";
import { ip, parseIp } from "../src/core/ip.ts";
import { percentile } from "./stats.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "10000" } } });
const n = Number(values.services);
const pools = parsePoolConfigMap({
  namespace: "lodestone-system",
  name: "pools",
  data: { "pools.yaml": '- {name: web, addresses: ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/96"]}' },
  labels: { "lodestone.dev/pools": "true" },
}).pools;
const config = mergeBgp(
  [
    parseBgpText(
      `bgpPeers:
  - {name: tor, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}
  - {name: tor6, peerAddress: "2001:db8::1", peerASN: 64512, myASN: 64513}
bgpAdvertisements:
  - {name: all, communities: ["64512:1"]}
  - {name: pref, localPref: 120, peers: [tor]}
`,
      "lodestone-system/bgp",
    ).config,
  ],
  new Set(["web"]),
).config;

const v4 = parseIp("198.51.100.0")!.value;
const v6 = parseIp("2001:db8:1::")!.value;
const services = (count: number): BgpService[] =>
  Array.from({ length: count }, (_, i) => ({
    key: `default/s${i}`,
    // 512 v4 addresses in the pool: Services share them (as sharing keys do), every one has its own v6.
    ingress: [ip(4, v4 + BigInt(i % 512)), ip(6, v6 + BigInt(i + 1))],
    local: i % 4 === 0,
  }));

function pass(list: readonly BgpService[]) {
  const t0 = performance.now();
  const plan = planBgp({
    config,
    pools,
    nodeLabels: {},
    services: list,
    readyHere: (key) => Number(key.slice("default/s".length)) % 8 === 0,
  });
  const t1 = performance.now();
  const text = renderFrrConfig(plan, { bfdProfiles: [] });
  const t2 = performance.now();
  return { plan: t1 - t0, render: t2 - t1, bytes: text.length, prefixes: plan.peers.map((p) => p.prefixes.length) };
}

const measure = (count: number) => {
  const list = services(count);
  for (let i = 0; i < 3; i++) pass(list);
  const runs = Array.from({ length: 10 }, () => pass(list));
  return {
    plan_ms: +percentile(
      runs.map((r) => r.plan),
      50,
    ).toFixed(1),
    render_ms: +percentile(
      runs.map((r) => r.render),
      50,
    ).toFixed(1),
    bytes: runs[0]!.bytes,
    prefixes: runs[0]!.prefixes,
  };
};
const one = measure(n);
const two = measure(2 * n);
console.log(
  `${n} Services: plan ${one.plan_ms} ms, render ${one.render_ms} ms, ${one.bytes} bytes, prefixes per peer ${one.prefixes.join("/")}`,
);
console.log(`${2 * n} Services: plan ${two.plan_ms} ms, render ${two.render_ms} ms, ${two.bytes} bytes`);
console.log(
  JSON.stringify({
    services: n,
    plan_ms: one.plan_ms,
    render_ms: one.render_ms,
    config_bytes: one.bytes,
    ratio_2n: +((two.plan_ms + two.render_ms) / (one.plan_ms + one.render_ms)).toFixed(2),
  }),
);
