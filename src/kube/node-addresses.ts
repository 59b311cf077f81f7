import type { NodeAddresses } from "../core/node-address-conflicts.ts";
import type { Result } from "../core/errors.ts";
import { err, ok } from "../core/errors.ts";
import type { KubeClient } from "./client.ts";
import { responseMessage } from "./client.ts";

/** Pages of this many Nodes: one list of a 5,000-node cluster would be a 50 MB answer. */
const PAGE = 500;

/**
 * Every Node's name and `status.addresses`, listed in pages (`limit`/`continue`, as kubectl's chunked lists do).
 * The error says why they could not be listed (no answer, 403, …), for a one-line "not checked" note.
 */
export async function listNodeAddresses(
  client: KubeClient,
  timeoutMs = 10_000,
  page = PAGE,
): Promise<Result<readonly NodeAddresses[], string>> {
  const out: NodeAddresses[] = [];
  let cont: string | undefined;
  do {
    const res = await client.request({
      method: "GET",
      path: "/api/v1/nodes",
      query: { limit: page, ...(cont === undefined ? {} : { continue: cont }) },
      timeoutMs,
    });
    if (res.status !== 200) {
      const why = responseMessage(res);
      return err(
        res.status === 0 ? `cannot reach the API server: ${why}` : `cannot list Nodes (HTTP ${res.status}): ${why}`,
      );
    }
    const body = (res.body ?? {}) as { items?: unknown; metadata?: { continue?: unknown } };
    for (const item of Array.isArray(body.items) ? (body.items as unknown[]) : []) out.push(project(item));
    const next = body.metadata?.continue;
    cont = typeof next === "string" && next !== "" ? next : undefined;
  } while (cont !== undefined);
  return ok(out);
}

function project(item: unknown): NodeAddresses {
  const o = (typeof item === "object" && item !== null ? item : {}) as {
    metadata?: { name?: unknown };
    status?: { addresses?: unknown };
  };
  const raw = Array.isArray(o.status?.addresses) ? (o.status.addresses as unknown[]) : [];
  const addresses = raw.flatMap((a) => {
    const x = (typeof a === "object" && a !== null ? a : {}) as { type?: unknown; address?: unknown };
    return typeof x.type === "string" && typeof x.address === "string" ? [{ type: x.type, address: x.address }] : [];
  });
  return { name: typeof o.metadata?.name === "string" ? o.metadata.name : "(unnamed)", addresses };
}
