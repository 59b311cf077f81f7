import { createAnnouncer } from "../net/announcer.ts";
import { startWire } from "./wire.ts";
import type { ComponentFactory, DaemonComponent } from "./daemon.ts";
import { type SpeakerContext, createSpeaker } from "./speaker.ts";

/**
 * The speaker as a daemon component: membership, per-IP announcer ranking and the layer-2 announcer on this node's
 * interfaces. `lodestone run` starts it unless `--speaker=false`. It needs CAP_NET_RAW; without it the speaker
 * reports the announcer's error in its readiness and the log, and the controller half keeps allocating. It reads
 * Services, pool ConfigMaps and Namespaces from the controller's caches instead of watching them a second time.
 */
export function speakerComponent(overrides: Partial<SpeakerContext> = {}): ComponentFactory {
  return (ctx): DaemonComponent => {
    const speaker = createSpeaker({
      client: ctx.client,
      namespace: ctx.namespace,
      nodeName: ctx.nodeName,
      logger: ctx.logger,
      handlesClass: ctx.handlesClass,
      shared: ctx.watched,
      createAnnouncer: async (logger) => {
        const r = await createAnnouncer({ logger: logger.child({ component: "announcer" }) });
        return r.ok ? { ok: true, value: r.value } : { ok: false, error: { message: r.error.message } };
      },
      ...(ctx.stallMs === undefined ? {} : { stallMs: ctx.stallMs }),
      // The real announcer and the heartbeats on their own thread; a test's own announcer runs in-process.
      ...(overrides.createAnnouncer === undefined ? { createWire: startWire } : {}),
      ...overrides,
    });
    return {
      name: "speaker",
      start: () => speaker.start(),
      handoff: () => speaker.handoff(),
      stop: () => speaker.stop(),
      telemetry: () => speaker.telemetry(),
      readiness: () => speaker.readiness(),
      loops: () => speaker.loops(),
    };
  };
}
