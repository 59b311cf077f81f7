/**
 * CustomResourceDefinitions shaped like MetalLB 0.13+'s metallb.io/v1beta1 IPAddressPool and L2Advertisement
 * (the fields Lodestone reads, written for these tests), so the sandbox serves and prunes them as a cluster with
 * MetalLB's CRDs installed would.
 */
const selector = {
  type: "object",
  properties: {
    matchLabels: { type: "object", additionalProperties: { type: "string" } },
    matchExpressions: {
      type: "array",
      items: {
        type: "object",
        required: ["key", "operator"],
        properties: {
          key: { type: "string" },
          operator: { type: "string" },
          values: { type: "array", items: { type: "string" } },
        },
      },
    },
  },
};

const crd = (plural: string, kind: string, spec: Record<string, unknown>, status?: Record<string, unknown>) => ({
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `${plural}.metallb.io` },
  spec: {
    group: "metallb.io",
    scope: "Namespaced",
    names: { plural, kind, singular: kind.toLowerCase() },
    versions: [
      {
        name: "v1beta1",
        served: true,
        storage: true,
        ...(status === undefined ? {} : { subresources: { status: {} } }),
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", ...spec },
              ...(status === undefined ? {} : { status: { type: "object", properties: status } }),
            },
          },
        },
      },
    ],
  },
});

export const ipAddressPoolCrd = crd(
  "ipaddresspools",
  "IPAddressPool",
  {
    required: ["addresses"],
    properties: {
      addresses: { type: "array", items: { type: "string" } },
      autoAssign: { type: "boolean", default: true },
      avoidBuggyIPs: { type: "boolean", default: false },
      serviceAllocation: {
        type: "object",
        properties: {
          priority: { type: "integer" },
          namespaces: { type: "array", items: { type: "string" } },
          namespaceSelectors: { type: "array", items: selector },
          serviceSelectors: { type: "array", items: selector },
        },
      },
    },
  },
  {
    assignedIPv4: { type: "integer", format: "int64" },
    assignedIPv6: { type: "integer", format: "int64" },
    availableIPv4: { type: "integer", format: "int64" },
    availableIPv6: { type: "integer", format: "int64" },
  },
);

export const l2AdvertisementCrd = crd("l2advertisements", "L2Advertisement", {
  properties: {
    ipAddressPools: { type: "array", items: { type: "string" } },
    ipAddressPoolSelectors: { type: "array", items: selector },
    nodeSelectors: { type: "array", items: selector },
    interfaces: { type: "array", items: { type: "string" } },
  },
});
