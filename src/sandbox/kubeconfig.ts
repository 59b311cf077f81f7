import { stringify } from "yaml";

/**
 * A kubeconfig with one cluster, one user (bearer token) and one current context. The server is plain HTTP;
 * client-node 2.x refuses http:// unless insecure-skip-tls-verify is set, and kubectl accepts it.
 */
export function kubeconfigYaml(server: string, user: string, token: string, namespace = "default"): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "lodestone-sandbox", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: "lodestone-sandbox", context: { cluster: "lodestone-sandbox", user, namespace } }],
    "current-context": "lodestone-sandbox",
    preferences: {},
  });
}
