import { existsSync } from "node:fs";

/**
 * The kubeconfig a command uses, as kubectl picks it: the flag, else $KUBECONFIG, else ~/.kube/config; undefined
 * means in-cluster, and `none` that there is neither a kubeconfig nor a pod's ServiceAccount to fall back on.
 */
export function kubeconfigPath(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): { readonly none: true } | { readonly none: false; readonly path: string | undefined } {
  const home = env["HOME"];
  const fallback = home !== undefined && existsSync(`${home}/.kube/config`) ? `${home}/.kube/config` : undefined;
  const path = flag ?? env["KUBECONFIG"] ?? fallback;
  if (path === undefined && env["KUBERNETES_SERVICE_HOST"] === undefined) return { none: true };
  return { none: false, path };
}
