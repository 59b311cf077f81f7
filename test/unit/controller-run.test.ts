import { describe, expect, it } from "vitest";
import { parseDuration, parseRunFlags } from "../../src/cli/run.ts";
import { classMatches } from "../../src/app/controller.ts";
import { EVENT_MESSAGE_BYTES, describeProblems, nextConfigMapState } from "../../src/core/config-state.ts";
import { parsePoolConfigMap } from "../../src/core/config.ts";
import { cutUtf8, utf8Length } from "../../src/core/utf8.ts";
import { ConfigCodes, problem } from "../../src/core/errors.ts";
import type { Pool } from "../../src/core/config.ts";

describe("lodestone run flags", () => {
  const env = { POD_NAMESPACE: "lb-system", NODE_NAME: "worker-1" };
  it("takes namespace and node from the environment, with the documented defaults", () => {
    const r = parseRunFlags([], env);
    expect(r.ok).toBe(true);
    if (r.ok !== true) return;
    expect(r.value.logLevel).toBe("info");
    expect(r.value.daemon).toMatchObject({
      namespace: "lb-system",
      nodeName: "worker-1",
      metricsPort: 7472,
      speaker: true,
      lease: { name: "lodestone-controller", leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000 },
    });
    expect(r.value.daemon.kubeconfig).toBeUndefined();
  });

  it.each([
    {
      desc: "flag=value and flag value",
      args: ["--namespace=x", "--node-name", "n"],
      want: { namespace: "x", nodeName: "n" },
    },
    { desc: "speaker off", args: ["--speaker=false"], want: { speaker: false } },
    { desc: "speaker off, value as the next word", args: ["--speaker", "false"], want: { speaker: false } },
    { desc: "the controller alone", args: ["--component=controller"], want: { component: "controller" } },
    { desc: "the speaker alone", args: ["--component", "speaker"], want: { component: "speaker" } },
    { desc: "metrics off", args: ["--metrics-port", "-1"], want: { metricsPort: -1 } },
    { desc: "a flag wins over its variable", args: ["--node-name=flag"], want: { nodeName: "flag" } },
    { desc: "bare boolean", args: ["--speaker", "--metrics-port", "0"], want: { speaker: true, metricsPort: 0 } },
    { desc: "class", args: ["--load-balancer-class", "example.com/lb"], want: { loadBalancerClass: "example.com/lb" } },
    {
      desc: "lease timings",
      args: ["--lease-duration=3s", "--renew-deadline", "2000ms", "--retry-period=0.5"],
      want: {
        lease: { name: "lodestone-controller", leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 },
      },
    },
  ])("$desc", ({ args, want }) => {
    const r = parseRunFlags(args, env);
    expect(r.ok === true && r.value.daemon).toMatchObject(want);
  });

  it.each([
    { desc: "unknown flag", args: ["--nodes=3"], error: "unknown flag --nodes" },
    { desc: "missing value", args: ["--namespace"], error: "--namespace needs a value" },
    { desc: "bad level", args: ["--log-level=loud"], error: "--log-level must be one of" },
    { desc: "bad port", args: ["--metrics-port=70000"], error: "--metrics-port must be" },
    { desc: "bad boolean", args: ["--speaker=maybe"], error: "--speaker must be true or false" },
    {
      desc: "unknown component",
      args: ["--component=both"],
      error: '--component must be controller or speaker, got "both"',
    },
    {
      desc: "a speaker without its speaker",
      args: ["--component=speaker", "--speaker=false"],
      error: "leave nothing to run",
    },
    { desc: "bad duration", args: ["--lease-duration=soon"], error: "is not a duration" },
    {
      desc: "unsafe timings",
      args: ["--lease-duration=5s", "--renew-deadline=5s"],
      error: "renew deadline must be shorter",
    },
    { desc: "positional", args: ["now"], error: 'unexpected argument "now"' },
  ])("rejects $desc with one line", ({ args, error }) => {
    const r = parseRunFlags(args, env);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error).toContain(error);
    expect(r.ok === false && r.error.includes("\n")).toBe(false);
  });

  it.each([
    ["15s", 15000],
    ["1500ms", 1500],
    ["2m", 120000],
    ["3", 3000],
    ["x", undefined],
    ["-1s", undefined],
  ])("duration %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe("class filter", () => {
  it.each([
    { desc: "default takes no class", cls: undefined, ours: undefined, want: true },
    { desc: "default takes lodestone.dev/lb", cls: "lodestone.dev/lb", ours: undefined, want: true },
    { desc: "default leaves other classes", cls: "other/lb", ours: undefined, want: false },
    { desc: "explicit class takes only itself", cls: "mine/lb", ours: "mine/lb", want: true },
    { desc: "explicit class leaves classless Services", cls: undefined, ours: "mine/lb", want: false },
    { desc: "explicit class leaves the default class", cls: "lodestone.dev/lb", ours: "mine/lb", want: false },
  ])("$desc", ({ cls, ours, want }) => {
    expect(classMatches(cls, ours)).toBe(want);
  });
});

describe("per-ConfigMap state", () => {
  const pool = (name: string) => ({ name }) as unknown as Pool;
  const bad = [problem(ConfigCodes.unknownField, "ns/cm", "pools.yaml[0].adresses", 'unknown field "adresses"')];
  it.each([
    {
      desc: "good replaces anything",
      prev: undefined,
      parsed: { pools: [pool("a")], problems: [] },
      pools: ["a"],
      stale: false,
    },
    {
      desc: "broken after good keeps the last good pools",
      prev: { configMap: "ns/cm", pools: [pool("old")], problems: [], stale: false, everGood: true },
      parsed: { pools: [], problems: bad },
      pools: ["old"],
      stale: true,
    },
    {
      desc: "broken and never good uses the valid part",
      prev: undefined,
      parsed: { pools: [pool("ok")], problems: bad },
      pools: ["ok"],
      stale: true,
    },
  ])("$desc", ({ prev, parsed, pools, stale }) => {
    const next = nextConfigMapState(prev, "ns/cm", parsed);
    expect(next.pools.map((p) => p.name)).toEqual(pools);
    expect(next.stale).toBe(stale);
  });

  it("names every problem in one bounded line", () => {
    expect(describeProblems([...bad, ...bad])).toBe(
      'pools.yaml[0].adresses: unknown field "adresses" [LODESTONE_E_UNKNOWN_FIELD]; pools.yaml[0].adresses: unknown field "adresses" [LODESTONE_E_UNKNOWN_FIELD]',
    );
    expect(utf8Length(describeProblems(Array(100).fill(bad[0]), "", 200))).toBeLessThanOrEqual(200);
  });

  /** A pool ConfigMap with `n` pools whose every address is wrong. */
  const broken = (n: number) =>
    parsePoolConfigMap({
      namespace: "lodestone-system",
      name: "pools",
      labels: { "lodestone.dev/pools": "true" },
      data: {
        "pools.yaml": Array.from(
          { length: n },
          (_, i) => `- name: pool-${i}\n  addresses: [198.51.100.${i}/99]\n`,
        ).join(""),
      },
    }).problems;

  // kube-apiserver refuses an Event whose message has more than 1024 bytes (pkg/apis/core/validation,
  // legacyValidateEvent: NoteLengthLimit, Go's len() of the string). The controller's ConfigInvalid message for
  // 40 bad pools was 1,041 characters: cut at 1,000 UTF-16 units, then a count put in front.
  it.each([
    { desc: "40 bad pools", n: 40 },
    { desc: "60 bad pools", n: 60 },
    { desc: "400 bad pools", n: 400 },
  ])("fits an Event's 1024 bytes and counts what it leaves out: $desc", ({ n }) => {
    const problems = broken(n);
    expect(problems).toHaveLength(n);
    const head = `${n} problem(s), only its valid pools are used: `;
    const text = describeProblems(problems, head);
    expect(utf8Length(text)).toBeLessThanOrEqual(EVENT_MESSAGE_BYTES);
    expect(text.startsWith(head + "pools.yaml[0]")).toBe(true);
    const m = /; … and (\d+) more problems; see `lodestone check-config`$/.exec(text);
    expect(m).not.toBeNull();
    // Whole problems only: the ones shown plus the count are all of them.
    const shown = text.slice(head.length, m!.index).split("; ").length;
    expect(shown + Number(m![1])).toBe(n);
    expect(text.slice(head.length, m!.index)).toBe(describeProblems(problems.slice(0, shown), "", Infinity));
  });

  it("measures bytes, not characters: a multi-byte message is cut sooner and never inside a character", () => {
    const wide = [problem(ConfigCodes.unknownField, "ns/cm", "pools.yaml[0].名前", 'unknown field "名前"'.repeat(60))];
    const text = describeProblems([...wide, ...wide], "", 300);
    expect(utf8Length(text)).toBeLessThanOrEqual(300);
    expect(text).toMatch(/…; … and 1 more problem; see `lodestone check-config`$/);
    expect(text).not.toContain("\uFFFD");
    expect(cutUtf8("aé名😀", 1)).toBe("a");
    expect(cutUtf8("aé名😀", 3)).toBe("aé");
    expect(cutUtf8("aé名😀", 9)).toBe("aé名");
    expect(cutUtf8("aé名😀", 10)).toBe("aé名😀");
  });
});
