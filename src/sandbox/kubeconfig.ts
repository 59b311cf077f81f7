import { stringify } from "yaml";

/**
 * A kubeconfig with one cluster, one user (bearer token) and one current context. For plain HTTP it sets
 * insecure-skip-tls-verify (client-node 2.x refuses http:// otherwise); for HTTPS it carries the certificate.
 */
export function kubeconfigYaml(
  server: string,
  user: string,
  token: string,
  namespace = "default",
  ca?: string,
): string {
  const cluster =
    ca === undefined
      ? { server, "insecure-skip-tls-verify": true }
      : { server, "certificate-authority-data": Buffer.from(ca).toString("base64") };
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "lodestone-sandbox", cluster }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: "lodestone-sandbox", context: { cluster: "lodestone-sandbox", user, namespace } }],
    "current-context": "lodestone-sandbox",
    preferences: {},
  });
}
