import { createSocket } from "node:dgram";
import { err, NetCodes, ok, type NetError, type Result } from "../core/errors.ts";
import { formatIp, ipKey, type IpAddress } from "../core/ip.ts";

/**
 * IPv6 multicast group membership held by the kernel's own IPv6 stack (IPV6_ADD_MEMBERSHIP on UDP sockets), so
 * the kernel acts as a multicast listener (RFC 3810): it sends unsolicited MLD reports on a join, answers queries
 * while the group is held, and sends a state-change record when it is left. A switch that snoops MLD forwards a
 * group's frames only to ports that reported it; a link-layer membership (PACKET_ADD_MEMBERSHIP) makes the NIC
 * accept the frames but reports nothing.
 */
export interface MulticastListener {
  /** Joins `group` on the interface; joining a group already held here is a no-op. */
  join(group: IpAddress): Result<void, NetError>;
  /** Leaves `group`; leaving a group not held (e.g. its join failed) is a no-op. */
  leave(group: IpAddress): Result<void, NetError>;
  /** Leaves every group (closing the sockets makes the kernel leave them). */
  close(): void;
}

/** The part of a `dgram` udp6 socket used here; unit tests inject a fake. */
export interface MembershipSocket {
  addMembership(group: string, iface: string): void;
  dropMembership(group: string, iface: string): void;
  close(): void;
}

function udp6Socket(): MembershipSocket {
  const socket = createSocket({ type: "udp6" });
  // Never bound, sent on or read from by us (libuv binds an ephemeral port on the first join), so no 'error' is
  // expected; the listener keeps one from becoming an uncaught exception all the same.
  socket.on("error", () => undefined);
  socket.unref();
  return socket;
}

const errnoOf = (e: unknown): string => (typeof e === "object" && e !== null && "code" in e ? String(e.code) : "");

/**
 * A listener for one interface, by name. Each socket holds as many groups as `net.core.optmem_max` allows (~56
 * bytes each: about 360 with the long-standing 20 KiB default, ~2,300 with the 128 KiB of recent kernels); a join
 * refused for that (ENOMEM; ENOBUFS on some kernels) moves to a new socket, so thousands of VIPs get their group.
 *
 * The interface is named through the zone of `::%NAME` (libuv resolves it with if_nametoindex); an unknown name
 * would silently become "any interface", so the announcer opens a listener only for an interface it has just
 * seen, and closes it (leaving everything it joined) when that interface goes or is re-created.
 */
export function openMulticastListener(ifname: string, open: () => MembershipSocket = udp6Socket): MulticastListener {
  const zone = `::%${ifname}`;
  const sockets: MembershipSocket[] = [];
  const heldBy = new Map<string, MembershipSocket>();
  const failure = (e: unknown, what: string, group: IpAddress): NetError => ({
    code: errnoOf(e) === "ENODEV" ? NetCodes.interfaceUnusable : NetCodes.socket,
    message: `${what} ${formatIp(group)} on ${ifname}: ${e instanceof Error ? e.message : String(e)}`,
  });

  return {
    join(group) {
      const key = ipKey(group);
      if (heldBy.has(key)) return ok(undefined);
      const text = formatIp(group);
      try {
        let socket = sockets.at(-1);
        if (socket === undefined) sockets.push((socket = open()));
        try {
          socket.addMembership(text, zone);
        } catch (e: unknown) {
          if (errnoOf(e) !== "ENOMEM" && errnoOf(e) !== "ENOBUFS") throw e;
          sockets.push((socket = open()));
          socket.addMembership(text, zone);
        }
        heldBy.set(key, socket);
        return ok(undefined);
      } catch (e: unknown) {
        return err(failure(e, "joining", group));
      }
    },
    leave(group) {
      const key = ipKey(group);
      const socket = heldBy.get(key);
      if (socket === undefined) return ok(undefined);
      heldBy.delete(key);
      try {
        socket.dropMembership(formatIp(group), zone);
        return ok(undefined);
      } catch (e: unknown) {
        return err(failure(e, "leaving", group));
      }
    },
    close() {
      for (const socket of sockets) socket.close();
      sockets.length = 0;
      heldBy.clear();
    },
  };
}
