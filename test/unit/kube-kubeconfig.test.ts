// The light kubeconfig reader: what it reads itself, what it leaves to client-node's loader, what it refuses.
import { describe, expect, it } from "vitest";
import { accessFromKubeConfig, inClusterAccess, type AccessResult } from "../../src/kube/kubeconfig.ts";

const files: Record<string, string> = { "/etc/k/ca.pem": "CA FROM FILE", "/home/u/.kube/client.crt": "CERT FROM FILE" };
const readFile = (path: string): Buffer => {
  const text = files[path];
  if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
  return Buffer.from(text);
};

const kubeconfig = (cluster: Record<string, unknown>, user: Record<string, unknown>, current = "c"): string =>
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    "current-context": current,
    contexts: [{ name: "c", context: { cluster: "k", user: "u", namespace: "x" } }],
    clusters: [{ name: "k", cluster }],
    users: [{ name: "u", user }],
  });

const b64 = (s: string): string => Buffer.from(s).toString("base64");
const read = (text: string): AccessResult => accessFromKubeConfig(text, "/home/u/.kube", readFile);

describe("accessFromKubeConfig", () => {
  it.each([
    {
      desc: "token and CA data",
      cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": b64("CA") },
      user: { token: "abc" },
      want: { server: "https://10.0.0.1:6443", token: "abc", ca: "CA", insecureSkipTlsVerify: false },
    },
    {
      desc: "CA file, relative client certificate, key data, tokenFile relative to the kubeconfig",
      cluster: {
        server: "https://api:6443",
        "certificate-authority": "/etc/k/ca.pem",
        "tls-server-name": "api.example",
      },
      user: { "client-certificate": "client.crt", "client-key-data": b64("KEY"), tokenFile: "token" },
      want: {
        server: "https://api:6443",
        ca: "CA FROM FILE",
        cert: "CERT FROM FILE",
        key: "KEY",
        tlsServerName: "api.example",
        tokenFile: "/home/u/.kube/token",
        insecureSkipTlsVerify: false,
      },
    },
    {
      desc: "plain HTTP marked insecure (the sandbox's kubeconfig)",
      cluster: { server: "http://127.0.0.1:8080", "insecure-skip-tls-verify": true },
      user: { token: "t" },
      want: { server: "http://127.0.0.1:8080", token: "t", insecureSkipTlsVerify: true },
    },
  ])("reads $desc", ({ cluster, user, want }) => {
    const r = read(kubeconfig(cluster, user));
    expect(r.kind).toBe("ok");
    if (r.kind !== "ok") return;
    const a = r.access;
    expect({
      ...a,
      ca: a.ca?.toString(),
      cert: a.cert?.toString(),
      key: a.key?.toString(),
    }).toEqual(Object.fromEntries(Object.entries({ ...want }).filter(([, v]) => v !== undefined)));
  });

  it.each([
    { desc: "an exec plugin", user: { exec: { command: "aws" } }, why: "exec" },
    { desc: "an auth provider", user: { "auth-provider": { name: "oidc" } }, why: "auth-provider" },
    { desc: "basic auth", user: { username: "a", password: "b" }, why: "username, password" },
  ])("leaves $desc to client-node", ({ user, why }) => {
    expect(read(kubeconfig({ server: "https://a:6443" }, user))).toEqual({ kind: "unsupported", why });
  });

  it("leaves a proxy to client-node", () => {
    expect(read(kubeconfig({ server: "https://a:6443", "proxy-url": "http://p:3128" }, {}))).toEqual({
      kind: "unsupported",
      why: "proxy-url",
    });
  });

  it.each([
    {
      desc: "plain HTTP not marked insecure",
      text: kubeconfig({ server: "http://a:8080" }, {}),
      want: "HTTP protocol",
    },
    { desc: "no such context", text: kubeconfig({ server: "https://a" }, {}, "other"), want: 'no context "other"' },
    {
      desc: "a missing CA file",
      text: kubeconfig({ server: "https://a", "certificate-authority": "/nope" }, {}),
      want: "ENOENT",
    },
    { desc: "no server", text: kubeconfig({}, {}), want: "no server" },
    { desc: "not YAML", text: "a: [", want: "not YAML" },
  ])("refuses $desc", ({ text, want }) => {
    const r = read(text);
    expect(r.kind).toBe("error");
    expect(r.kind === "error" ? r.message : "").toContain(want);
  });
});

describe("inClusterAccess", () => {
  it("needs KUBERNETES_SERVICE_HOST and _PORT", () => {
    const r = inClusterAccess({});
    expect(r.kind === "error" ? r.message : "").toContain("KUBERNETES_SERVICE_HOST");
  });

  it("brackets an IPv6 service address and uses plain HTTP on port 8080, as client-node does", () => {
    const r = inClusterAccess({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "8080" });
    expect(r).toEqual({
      kind: "ok",
      access: {
        server: "http://[fd00::1]:8080",
        insecureSkipTlsVerify: false,
        tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      },
    });
  });
});
