import { request, type Agent } from "node:http";

/** One plain-HTTP request of the benchmarks' load generators (node:http: the cheapest client per request). */
export function httpRequest(
  agent: Agent,
  method: string,
  url: string,
  body: unknown,
  type = "application/json",
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      {
        method,
        agent,
        headers: data === undefined ? {} : { "content-type": type, "content-length": Buffer.byteLength(data) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout ${method} ${url}`)));
    req.end(data);
  });
}
