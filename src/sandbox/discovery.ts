import { apiVersionOf, verbs, type Registry, type ResourceType } from "./resources.ts";

/** Discovery documents (legacy, unaggregated: kubectl falls back to them when the server offers nothing else). */
export function apiVersions(serverAddress: string): string {
  return JSON.stringify({
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  });
}

/** A group's versions, preferred first. */
function group(name: string, versions: readonly string[]): object {
  const gvs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: gvs, preferredVersion: gvs[0] };
}

export function apiGroupList(registry: Registry): string {
  return JSON.stringify({
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: registry.groups().map((g) => group(g.group, g.versions)),
  });
}

export function apiGroup(registry: Registry, name: string): string | undefined {
  const g = registry.groups().find((x) => x.group === name);
  return g === undefined
    ? undefined
    : JSON.stringify({ kind: "APIGroup", apiVersion: "v1", ...group(g.group, g.versions) });
}

function entries(t: ResourceType): object[] {
  const main = {
    name: t.resource,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs,
    ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
    ...(t.custom === undefined ? {} : { categories: t.custom.categories }),
  };
  const status = {
    name: `${t.resource}/status`,
    singularName: "",
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: ["get", "patch", "update"],
  };
  return t.status ? [main, status] : [main];
}

export function apiResourceList(registry: Registry, groupName: string, version: string): string | undefined {
  const types = registry.all().filter((t) => t.group === groupName && t.version === version);
  const first = types[0];
  if (first === undefined) return undefined;
  return JSON.stringify({
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: apiVersionOf(first),
    resources: types.flatMap(entries),
  });
}

export function version(): string {
  return JSON.stringify({
    major: "1",
    minor: "32",
    gitVersion: "v1.32.0-lodestone-sandbox",
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2026-01-01T00:00:00Z",
    goVersion: "go1.23.0",
    compiler: "gc",
    platform: "linux/amd64",
  });
}

const openApiPath = (gv: string): string => (gv === "v1" ? "api/v1" : `apis/${gv}`);

/** /openapi/v3: one entry per group-version. kubectl reads it to learn that the server validates fields itself. */
export function openApiRoot(registry: Registry): string {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const t of registry.all()) {
    const p = openApiPath(apiVersionOf(t));
    // The hash changes with the served types, so kubectl's cache of a group-version's document goes stale.
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=lodestone-sandbox-${registry.generation + 1}` };
  }
  return JSON.stringify({ paths });
}

/**
 * A minimal OpenAPI v3 document for one group-version: only the PATCH operations with their
 * `x-kubernetes-group-version-kind` and the `fieldValidation` parameter, which is what kubectl's
 * query-parameter verifier looks for before it skips client-side schema validation.
 */
export function openApiGroupVersion(registry: Registry, path: string): string | undefined {
  const types = registry.all().filter((t) => openApiPath(apiVersionOf(t)) === path);
  if (types.length === 0) return undefined;
  const paths: Record<string, object> = {};
  for (const t of types) {
    const prefix = `/${path}${t.namespaced ? "/namespaces/{namespace}" : ""}/${t.resource}/{name}`;
    paths[prefix] = {
      patch: {
        operationId: `patch${t.kind}`,
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": { group: t.group, version: t.version, kind: t.kind },
        parameters: [{ name: "fieldValidation", in: "query", schema: { type: "string", uniqueItems: true } }],
        responses: { "200": { description: "OK" } },
      },
    };
  }
  return JSON.stringify({ openapi: "3.0.0", info: { title: "Kubernetes", version: "v1.32.0" }, paths });
}
