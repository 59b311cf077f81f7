import type { Logger } from "pino";
import type { KubeClient } from "../kube/client.ts";
import { type Informer, createInformer } from "../kube/informer.ts";
import { type SlimEndpointSlice, type SlimService, projectEndpointSlice } from "../kube/objects.ts";

export interface LocalSlicesOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  /** The Service cache the speaker plans from; it decides which slices are kept. */
  readonly services: Informer<SlimService>;
  /** A Service that was loading has its slices now: the plan should take it in again. */
  readonly loaded: () => void;
}

export interface LocalSlices {
  /** Slices of Services with `externalTrafficPolicy: Local` only. Start it once `services` is synced. */
  readonly informer: Informer<SlimEndpointSlice>;
  /** Nodes with a ready endpoint, per Service key ("namespace/name"), from the slices kept. */
  endpointNodes(): Map<string, Set<string>>;
  /**
   * True for a Service that turned Local after some of its slices had been dropped, until the slices have been
   * listed again: its endpoints are not known yet, so it must be neither announced nor reported as unannounceable.
   */
  loading(serviceKey: string): boolean;
  /** Stops following `services` (which may outlive the speaker). */
  detach(): void;
}

const isLocal = (s: SlimService | undefined): boolean => s?.externalTrafficPolicy === "Local";

/**
 * The speaker's EndpointSlice cache. Only a Local Service is elected by where its ready endpoints are (see
 * core/announce-plan.ts), so only its slices are kept: the cluster's other slices (one or more per Service of any
 * type) would cost ~200 bytes each for nothing. A slice seen while its Service is not Local, or not in the Service
 * cache at all, is dropped and its Service noted; when a noted Service turns Local, no slice event may come for the
 * slices already passed over, so that Service's slices alone are listed and watched (an informer of its own, label
 * `kubernetes.io/service-name` in its namespace: one small list instead of every node listing the whole cluster's
 * slices) until the next complete list of the main informer holds them (while the Service is Local), or the
 * Service is deleted. Notes are
 * forgotten when a complete list no longer finds a dropped slice of their Service, so they stay within the
 * Services that exist (plus one list's worth of churn).
 */
export function createLocalSlices(o: LocalSlicesOptions): LocalSlices {
  /** Service key → the number of complete lists when one of its slices was last dropped. */
  const dropped = new Map<string, number>();
  let lists = 0;
  let droppedAfterList = 0;
  let pruning = false;

  const informer = createInformer<SlimEndpointSlice>({
    client: o.client,
    logger: o.logger,
    resource: "speaker-endpointslices",
    path: "/apis/discovery.k8s.io/v1/endpointslices",
    project: (raw) => {
      const slice = projectEndpointSlice(raw);
      if (slice === undefined) return undefined;
      const key = `${slice.namespace}/${slice.service}`;
      const svc = o.services.get(key);
      if (isLocal(svc)) return slice;
      // The cached Service's key, when there is one: one string shared with the Service cache.
      dropped.set(svc?.key ?? key, lists);
      // Between lists only deletions of Services never cached can pile up (their slices' deletions are not seen):
      // past twice what the last list found, a list prunes them.
      if (lists > 0 && !pruning && dropped.size > 2 * droppedAfterList + 1_000) {
        pruning = true;
        void informer.relist().then(() => (pruning = false));
      }
      return undefined;
    },
  });
  /**
   * Per Service that turned Local after slices of it were dropped: its own slices, listed and watched. The Service
   * is loading while its informer has not completed its list.
   */
  const own = new Map<string, Informer<SlimEndpointSlice>>();
  const stopOwn = (key: string): void => {
    const i = own.get(key);
    if (i === undefined) return;
    own.delete(key);
    // One still listing never reports: the plan must take the Service in anyway.
    if (!i.synced()) o.loaded();
    void i.stop();
  };

  informer.subscribe({
    synced: () => {
      // A complete list kept every slice of every Local Service: their own informers are not needed any more.
      for (const key of [...own.keys()]) if (isLocal(o.services.get(key))) stopOwn(key);
      lists++;
      // Every existing dropped slice was projected during this list and noted again with `lists - 1`.
      for (const [key, at] of dropped) if (at < lists - 1) dropped.delete(key);
      droppedAfterList = dropped.size;
    },
  });

  const detach = o.services.subscribe({
    upsert: (svc, old) => {
      if (!isLocal(svc) || isLocal(old)) return;
      // An informer of its own, kept while the Service was Cluster, still follows every slice of it.
      if (own.has(svc.key)) {
        dropped.delete(svc.key);
        return;
      }
      if (!dropped.has(svc.key)) return;
      dropped.delete(svc.key);
      const mine = createInformer<SlimEndpointSlice>({
        client: o.client,
        logger: o.logger,
        resource: "speaker-endpointslices-of-service",
        path: `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(svc.namespace)}/endpointslices`,
        labelSelector: `kubernetes.io/service-name=${svc.name}`,
        project: projectEndpointSlice,
      });
      own.set(svc.key, mine);
      // A subscription, not whenSynced(): one stopped before its list completes is dropped with the informer
      // (a pending promise would keep the informer and its cache reachable until the process ends).
      const unsubscribe = mine.subscribe({
        synced: () => {
          unsubscribe();
          if (own.get(svc.key) === mine) o.loaded();
        },
      });
      mine.start();
    },
    delete: (svc) => stopOwn(svc.key),
  });

  return {
    informer,
    endpointNodes() {
      const out = new Map<string, Set<string>>();
      // The main cache and the per-Service ones may both hold a slice: each sees all its events, so the union holds.
      for (const cache of [informer, ...own.values()]) {
        for (const s of cache.values()) {
          const key = `${s.namespace}/${s.service}`;
          let nodes = out.get(key);
          if (nodes === undefined) out.set(key, (nodes = new Set()));
          for (const n of s.readyNodes) nodes.add(n);
        }
      }
      return out;
    },
    loading: (key) => own.get(key)?.synced() === false,
    detach: () => {
      detach();
      for (const key of [...own.keys()]) stopOwn(key);
    },
  };
}
