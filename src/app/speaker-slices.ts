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
 * cache at all, is dropped and its Service noted; when a noted Service turns Local, the slices are listed again
 * (the informer's relist), since no slice event may come for them. Notes are forgotten when a complete list no
 * longer finds a dropped slice of their Service, so they stay within the Services that exist (plus one list's
 * worth of churn).
 */
export function createLocalSlices(o: LocalSlicesOptions): LocalSlices {
  /** Service key → the number of complete lists when one of its slices was last dropped. */
  const dropped = new Map<string, number>();
  const loading = new Map<string, object>();
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
  informer.subscribe({
    synced: () => {
      lists++;
      // Every existing dropped slice was projected during this list and noted again with `lists - 1`.
      for (const [key, at] of dropped) if (at < lists - 1) dropped.delete(key);
      droppedAfterList = dropped.size;
    },
  });

  const detach = o.services.subscribe({
    upsert: (svc, old) => {
      if (!isLocal(svc) || isLocal(old) || !dropped.has(svc.key)) return;
      dropped.delete(svc.key);
      const token = {};
      loading.set(svc.key, token);
      void informer.relist().then(() => {
        // A later turn to Local waits for a later list.
        if (loading.get(svc.key) === token) loading.delete(svc.key);
        o.loaded();
      });
    },
  });

  return {
    informer,
    endpointNodes() {
      const out = new Map<string, Set<string>>();
      for (const s of informer.values()) {
        const key = `${s.namespace}/${s.service}`;
        let nodes = out.get(key);
        if (nodes === undefined) out.set(key, (nodes = new Set()));
        for (const n of s.readyNodes) nodes.add(n);
      }
      return out;
    },
    loading: (key) => loading.has(key),
    detach: () => void detach(),
  };
}
