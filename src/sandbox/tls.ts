import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Certificate {
  readonly key: string;
  readonly cert: string;
}

/**
 * A fresh self-signed certificate (P-256, one day) for the listen address, 127.0.0.1, ::1 and localhost, made
 * with the openssl command (Node has no X.509 writer). kubectl needs TLS to send credentials at all: over plain
 * HTTP client-go drops the kubeconfig's token, so RBAC mode serves HTTPS.
 */
export function selfSignedCertificate(host: string): Certificate {
  const names = new Set(["IP:127.0.0.1", "IP:::1", "DNS:localhost"]);
  if (isIP(host) !== 0 && host !== "0.0.0.0" && host !== "::") names.add(`IP:${host}`);
  else if (isIP(host) === 0) names.add(`DNS:${host}`);
  const dir = mkdtempSync(join(tmpdir(), "lodestone-sandbox-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=lodestone-sandbox",
        "-addext",
        `subjectAltName=${[...names].join(",")}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 },
    );
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
