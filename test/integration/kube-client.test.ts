// The daemon's API client without client-node: requests and watches against the embedded API server, over plain
// HTTP and over HTTPS with the sandbox's CA, from a kubeconfig file read by the light loader.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient, loadKubeConfig, type KubeClient } from "../../src/kube/client.ts";
import { accessSource, inClusterAccess } from "../../src/kube/kubeconfig.ts";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

let plain: Sandbox;
let tls: Sandbox;

beforeAll(async () => {
  plain = await startSandbox();
  tls = await startSandbox({ tls: true });
});
afterAll(async () => {
  await plain.stop();
  await tls.stop();
});

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe.each([
  { desc: "plain HTTP", sandbox: () => plain },
  { desc: "HTTPS with the sandbox's CA", sandbox: () => tls },
])("light client over $desc", ({ sandbox }) => {
  let client: KubeClient;
  beforeAll(async () => {
    client = createKubeClient(await loadKubeConfig(sandbox().kubeconfigPath, {}));
  });
  afterAll(() => client.close());

  it("creates, reads and patches with status codes as data", async () => {
    const created = await client.request({
      method: "POST",
      path: "/api/v1/namespaces/default/configmaps",
      body: { metadata: { name: "c1" }, data: { a: "1" } },
    });
    expect(created.status).toBe(201);
    const patched = await client.request({
      method: "PATCH",
      path: "/api/v1/namespaces/default/configmaps/c1",
      body: { data: { a: "2" } },
    });
    expect(patched.status).toBe(200);
    expect((patched.body as { data: { a: string } }).data.a).toBe("2");
    const missing = await client.request({ method: "GET", path: "/api/v1/namespaces/default/configmaps/nope" });
    expect(missing.status).toBe(404);
    expect((missing.body as { reason: string }).reason).toBe("NotFound");
  });

  it("sends its User-Agent on every request and watch, its field manager on every write; withIdentity shares the pool", async () => {
    const base = createKubeClient(await loadKubeConfig(sandbox().kubeconfigPath, {}), {
      identity: { userAgent: "lodestone/9.9.9 (controller; node n1)", fieldManager: "lodestone-controller" },
    });
    const other = base.withIdentity({
      userAgent: "lodestone/9.9.9 (speaker; node n1)",
      fieldManager: "lodestone-speaker",
    });
    try {
      const path = "/api/v1/namespaces/default/configmaps";
      expect((await base.request({ method: "POST", path, body: { metadata: { name: "ua-1" } } })).status).toBe(201);
      expect((await other.request({ method: "PATCH", path: `${path}/ua-1`, body: { data: { a: "1" } } })).status).toBe(
        200,
      );
      // A caller's own fieldManager wins.
      await base.request({
        method: "PUT",
        path: `${path}/ua-1`,
        query: { fieldManager: "mine" },
        body: { metadata: { name: "ua-1" } },
      });
      await base.request({ method: "GET", path: `${path}/ua-1` });
      const ctl = await other.watch(
        path,
        { timeoutSeconds: 1 },
        () => undefined,
        () => undefined,
      );
      await until(
        () =>
          sandbox().audit.records({ name: "", verb: "watch", userAgent: "lodestone/9.9.9 (speaker; node n1)" }).length >
          0,
      );
      ctl.abort();
      const seen = sandbox()
        .audit.records({ resource: "configmaps" })
        .filter((r) => r.userAgent.startsWith("lodestone/9.9.9") && r.verb !== "watch")
        .map((r) => [r.verb, r.userAgent.replace("lodestone/9.9.9 ", ""), r.fieldManager]);
      expect(seen).toEqual([
        ["create", "(controller; node n1)", "lodestone-controller"],
        ["patch", "(speaker; node n1)", "lodestone-speaker"],
        ["update", "(controller; node n1)", "mine"],
        ["get", "(controller; node n1)", ""],
      ]);
    } finally {
      await base.close();
    }
  });

  it("drains a success body unread when asked, but still reads an error's message", async () => {
    const path = "/api/v1/namespaces/default/configmaps";
    const written = await client.request({
      method: "POST",
      path,
      body: { metadata: { name: "c2" }, data: { a: "1" } },
      discardSuccessBody: true,
    });
    expect(written).toEqual({ status: 201, body: {} });
    const stored = await client.request({ method: "GET", path: `${path}/c2` });
    expect((stored.body as { data: { a: string } }).data.a).toBe("1");
    const refused = await client.request({
      method: "POST",
      path,
      body: { metadata: { name: "c2" } },
      discardSuccessBody: true,
    });
    expect(refused.status).toBe(409);
    expect((refused.body as { reason: string }).reason).toBe("AlreadyExists");
    // The connection is reusable after a drained body.
    expect((await client.request({ method: "GET", path: `${path}/c2` })).status).toBe(200);
  });

  it("reads a throttled answer's Retry-After and Status body even when success bodies are discarded", async () => {
    sandbox().faults.failNext({ code: 429, verb: "create", resource: "configmaps", retryAfterSeconds: 3 });
    const r = await client.request({
      method: "POST",
      path: "/api/v1/namespaces/default/configmaps",
      body: { metadata: { name: "throttled" } },
      discardSuccessBody: true,
    });
    expect(r.status).toBe(429);
    expect(r.retryAfterMs).toBe(3000);
    expect((r.body as { kind: string }).kind).toBe("Status");
  });

  it("sends the query encoded: a set-based label selector lists only what it selects", async () => {
    const path = "/api/v1/namespaces/default/configmaps";
    for (const [name, tier] of [
      ["q1", "front end"],
      ["q2", "back"],
    ] as const) {
      await client.request({
        method: "POST",
        path,
        body: { metadata: { name, labels: { q: "1", tier: tier.replace(" ", "-") } } },
      });
    }
    const r = await client.request({
      method: "GET",
      path,
      query: { labelSelector: "q=1,tier in (front-end)", limit: 10 },
    });
    expect(r.status).toBe(200);
    expect((r.body as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name)).toEqual(["q1"]);
  });

  it("streams watch events in order and reports an abort once", async () => {
    const seen: string[] = [];
    const ends: unknown[] = [];
    const ctl = await client.watch(
      "/api/v1/namespaces/default/configmaps",
      { resourceVersion: "0" },
      (type, obj) => seen.push(`${type} ${(obj as { metadata: { name: string } }).metadata.name}`),
      (err) => ends.push(err),
    );
    for (const name of ["w1", "w2"]) {
      await client.request({
        method: "POST",
        path: "/api/v1/namespaces/default/configmaps",
        body: { metadata: { name } },
      });
    }
    await client.request({ method: "DELETE", path: "/api/v1/namespaces/default/configmaps/w1" });
    await until(() => seen.includes("DELETED w1"));
    expect(seen.filter((s) => / w\d$/.test(s))).toEqual(["ADDED w1", "ADDED w2", "DELETED w1"]);
    ctl.abort();
    await until(() => ends.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(ends).toHaveLength(1);
    expect((ends[0] as Error).name).toBe("AbortError");
  });

  it("ends a watch the server refuses with an error carrying the status code", async () => {
    const ends: unknown[] = [];
    await client.watch(
      "/api/v1/namespaces/default/nosuchthings",
      {},
      () => undefined,
      (err) => ends.push(err),
    );
    await until(() => ends.length > 0);
    expect((ends[0] as { statusCode?: number }).statusCode).toBe(404);
  });

  it("keeps a watch open while events come, and ends it with a TimeoutError once it is silent", async () => {
    const quick = createKubeClient(await loadKubeConfig(sandbox().kubeconfigPath, {}), { watchIdleMs: 1000 });
    try {
      const ends: unknown[] = [];
      let lastEventAt = performance.now();
      await quick.watch(
        "/api/v1/namespaces/default/configmaps",
        {},
        () => (lastEventAt = performance.now()),
        (err) => ends.push(err),
      );
      // An event every 100 ms for 2.5 s: two and a half idle limits, so the timer must move with each event.
      for (let i = 0; i < 25; i++) {
        await quick.request({
          method: "POST",
          path: "/api/v1/namespaces/default/configmaps",
          body: { metadata: { generateName: "idle-" } },
        });
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(ends).toEqual([]);
      await until(() => ends.length > 0, 5000);
      expect((ends[0] as Error).name).toBe("TimeoutError");
      expect(performance.now() - lastEventAt).toBeGreaterThanOrEqual(900);
    } finally {
      await quick.close();
    }
  });

  it("ends with null when the server closes the watch (timeoutSeconds)", async () => {
    const ends: unknown[] = [];
    await client.watch(
      "/api/v1/namespaces/default/configmaps",
      { timeoutSeconds: 1 },
      () => undefined,
      (err) => ends.push(err),
    );
    await until(() => ends.length > 0, 5000);
    expect(ends).toEqual([null]);
  });
});

describe("light client without an answer", () => {
  it("reports a refused connection as status 0 with the reason, and a server that is no URL likewise", async () => {
    const free = await startSandbox();
    const url = free.url;
    await free.stop();
    const gone = createKubeClient({
      getCurrentCluster: () => ({ server: url }),
      applySecurityAuthentication: () => Promise.resolve(),
    });
    const r = await gone.request({ method: "GET", path: "/api/v1/namespaces" });
    expect(r.status).toBe(0);
    expect((r.body as { message: string }).message).toMatch(/ECONNREFUSED/);
    await gone.close();
    const broken = createKubeClient({
      getCurrentCluster: () => ({ server: "not a url" }),
      applySecurityAuthentication: () => Promise.resolve(),
    });
    const b = await broken.request({ method: "GET", path: "/api/v1/namespaces" });
    expect(b).toEqual({ status: 0, body: { message: "Invalid URL" } });
  });
});

describe("loadKubeConfig", () => {
  it("refuses a kubeconfig whose CA file is missing, with the reason", async () => {
    const path = join(tmpdir(), `lodestone-kc-${process.pid}.yaml`);
    writeFileSync(
      path,
      "apiVersion: v1\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n" +
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', certificate-authority: /nonexistent/ca.pem}}]\n" +
        "users: [{name: u, user: {token: t}}]\n",
    );
    await expect(loadKubeConfig(path, {})).rejects.toThrow(/ENOENT/);
  });

  it("merges KUBECONFIG-style paths (a:b) as kubectl does: the first file's context wins", async () => {
    const other = join(tmpdir(), `lodestone-kc-other-${process.pid}.yaml`);
    writeFileSync(
      other,
      "apiVersion: v1\ncurrent-context: o\ncontexts: [{name: o, context: {cluster: ko, user: uo}}]\n" +
        "clusters: [{name: ko, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: uo, user: {token: t}}]\n",
    );
    try {
      const source = await loadKubeConfig(`${plain.kubeconfigPath}:${other}`, {});
      expect(source.getCurrentCluster()?.server).toBe(plain.url);
      const client = createKubeClient(source);
      const r = await client.request({ method: "GET", path: "/api/v1/namespaces/default" });
      await client.close();
      expect(r.status).toBe(200);
    } finally {
      rmSync(other, { force: true });
    }
  });

  it("refuses to guess a cluster outside of one", async () => {
    await expect(loadKubeConfig(undefined, {})).rejects.toThrow(/KUBERNETES_SERVICE_HOST/);
  });
});

describe("in-cluster ServiceAccount (projected token, cluster CA)", () => {
  it("talks HTTPS with the mounted CA and follows a rotated token file", async () => {
    const sandbox = await startSandbox({ rbac: true });
    const prefix = mkdtempSync(join(tmpdir(), "lodestone-incluster-"));
    const mount = join(prefix, "var/run/secrets/kubernetes.io/serviceaccount");
    const admin = createKubeClient(await loadKubeConfig(sandbox.kubeconfigPath, {}));
    try {
      mkdirSync(mount, { recursive: true });
      writeFileSync(join(mount, "ca.crt"), sandbox.ca ?? "");
      for (const name of ["reader", "nobody"]) {
        await admin.request({
          method: "POST",
          path: "/api/v1/namespaces/default/serviceaccounts",
          body: { metadata: { name } },
        });
      }
      await admin.request({
        method: "POST",
        path: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        body: {
          metadata: { name: "ns-reader" },
          rules: [{ apiGroups: [""], resources: ["namespaces"], verbs: ["get"] }],
        },
      });
      await admin.request({
        method: "POST",
        path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        body: {
          metadata: { name: "ns-reader" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "ns-reader" },
          subjects: [{ kind: "ServiceAccount", namespace: "default", name: "reader" }],
        },
      });
      writeFileSync(join(mount, "token"), sandbox.tokenFor("default", "reader"));
      const access = inClusterAccess(
        { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: String(sandbox.port) },
        prefix,
      );
      if (access.kind !== "ok") throw new Error(JSON.stringify(access));
      expect(access.access.server).toBe(`https://127.0.0.1:${sandbox.port}`);
      const client = createKubeClient(accessSource(access.access), { authTtlMs: 0 });
      const get = () => client.request({ method: "GET", path: "/api/v1/namespaces/default" });
      expect((await get()).status).toBe(200);
      // The kubelet rotates the projected token: the next request must carry the new one (this one has no rights).
      writeFileSync(join(mount, "token"), sandbox.tokenFor("default", "nobody"));
      expect((await get()).status).toBe(403);
      writeFileSync(join(mount, "token"), sandbox.tokenFor("default", "reader"));
      expect((await get()).status).toBe(200);
      await client.close();
    } finally {
      await admin.close();
      await sandbox.stop();
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});

describe("a watch whose connection dies silently", () => {
  // A server that answers a watch with one line and then says nothing, as a connection lost without a reset looks.
  async function silentServer(firstLine: string): Promise<{ kubeconfigPath: string; close: () => Promise<void> }> {
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${firstLine}\n`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "lodestone-silent-"));
    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfigPath,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]`,
        "users: [{name: u, user: {token: t}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
    );
    return {
      kubeconfigPath,
      close: async () => {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it.each([
    {
      desc: "after a BOOKMARK: ends once silent for the bookmark limit, long before the watch's own end",
      line: '{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"7"}}}',
      endsWithin: 2000,
    },
    {
      desc: "without a BOOKMARK (a server that sends none): waits for the timeout-based limit",
      line: '{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","resourceVersion":"7"}}}',
      endsWithin: undefined,
    },
  ])("$desc", async ({ line, endsWithin }) => {
    const server = await silentServer(line);
    const client = createKubeClient(await loadKubeConfig(server.kubeconfigPath, {}), { bookmarkSilenceMs: 300 });
    try {
      const ends: unknown[] = [];
      const started = performance.now();
      const ctl = await client.watch(
        "/api/v1/configmaps",
        { timeoutSeconds: 60, allowWatchBookmarks: true },
        () => undefined,
        (err) => ends.push(err),
      );
      if (endsWithin !== undefined) {
        await until(() => ends.length > 0, endsWithin);
        expect((ends[0] as Error).name).toBe("TimeoutError");
        expect(performance.now() - started).toBeGreaterThanOrEqual(250);
      } else {
        await new Promise((r) => setTimeout(r, 1500));
        expect(ends).toEqual([]);
        ctl.abort();
      }
    } finally {
      await client.close();
      await server.close();
    }
  });
});
