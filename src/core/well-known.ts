/**
 * The names Lodestone shares with the cluster and its users: the load-balancer class, labels, annotations and
 * default object names. Users, the chart and RBAC spell them too, so each is written once, here.
 */

/** The class a Service may name to ask for Lodestone; by default Services without a class are handled too. */
export const DEFAULT_LOAD_BALANCER_CLASS = "lodestone.dev/lb";

/** ConfigMaps in the daemon's namespace carrying this label (value "true") hold pools. */
export const POOLS_LABEL = "lodestone.dev/pools";
export const POOLS_SELECTOR = `${POOLS_LABEL}=true`;

/** Marks each speaker's membership Lease (and the heartbeat key Secret, which the controller creates). */
export const COMPONENT_LABEL = "lodestone.dev/component";
export const SPEAKER_COMPONENT = "speaker";
export const SPEAKER_SELECTOR = `${COMPONENT_LABEL}=${SPEAKER_COMPONENT}`;

/** The label that opts a node out of external load balancers (Kubernetes well-known label). */
export const EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers";

/** Written by the controller on a Service: the pool its addresses come from. */
export const POOL_ANNOTATION = "lodestone.dev/pool";
/** Written by the controller on a Service, from the speakers' reports: the node(s) announcing its IPs. */
export const ANNOUNCING_ANNOTATION = "lodestone.dev/announcing-node";
/** On a speaker's membership Lease: the IPs it announces (src/core/announced-codec.ts), for the controller. */
export const ANNOUNCED_ANNOTATION = "lodestone.dev/announced";
/** Written by each speaker on its membership Lease: its interfaces and its heartbeat address (for its peers). */
export const INTERFACES_ANNOTATION = "lodestone.dev/interfaces";
export const HEARTBEAT_ANNOTATION = "lodestone.dev/heartbeat";

/** Set by a user on a Service: the IPs it asks for, the pool to take them from, the key to share one IP by. */
export const LOAD_BALANCER_IPS_ANNOTATION = "lodestone.dev/load-balancer-ips";
export const ADDRESS_POOL_ANNOTATION = "lodestone.dev/address-pool";
export const SHARING_KEY_ANNOTATION = "lodestone.dev/sharing-key";

/** The annotations a Service may set, preferred form first; the MetalLB forms work the same (drop-in migration). */
export const REQUEST_ANNOTATIONS = {
  loadBalancerIps: [LOAD_BALANCER_IPS_ANNOTATION, "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"],
  addressPool: [ADDRESS_POOL_ANNOTATION, "metallb.io/address-pool", "metallb.universe.tf/address-pool"],
  sharingKey: [SHARING_KEY_ANNOTATION, "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"],
} as const;

/** Every Service annotation Lodestone reads or writes starts with one of these; the informers keep only those. */
export const ANNOTATION_PREFIXES: readonly string[] = ["lodestone.dev/", "metallb.io/", "metallb.universe.tf/"];

/** The daemon's namespace when neither a flag nor POD_NAMESPACE names one. */
export const DEFAULT_NAMESPACE = "lodestone-system";
/** The Lease the controllers elect their leader by. */
export const CONTROLLER_LEASE = "lodestone-controller";
/** The Secret holding the heartbeats' shared HMAC key. */
export const MEMBERLIST_SECRET = "lodestone-memberlist";
/** Each speaker's membership Lease. */
export const speakerLeaseName = (node: string): string => `lodestone-speaker-${node}`;

/** Where MetalLB's chart and manifests install it: `--metallb-namespace`'s default. */
export const DEFAULT_METALLB_NAMESPACE = "metallb-system";
