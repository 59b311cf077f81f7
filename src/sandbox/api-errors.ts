import type { JsonObject } from "./json.ts";

/** A failed API call: the HTTP code and the `kind: Status` body the real kube-apiserver would send. */
export interface ApiError {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
  readonly details?: JsonObject;
  readonly retryAfterSeconds?: number;
}

export interface Target {
  readonly resource: string;
  readonly group: string;
  readonly name: string;
}

const qualified = (t: Pick<Target, "resource" | "group">): string =>
  t.group === "" ? t.resource : `${t.resource}.${t.group}`;

const details = (t: Target, extra: JsonObject = {}): JsonObject => ({
  name: t.name,
  ...(t.group === "" ? {} : { group: t.group }),
  kind: t.resource,
  ...extra,
});

export function statusBody(e: ApiError): JsonObject {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: e.message,
    // A plain Go error has no reason (StatusReasonUnknown, omitted).
    ...(e.reason === "" ? {} : { reason: e.reason }),
    ...(e.details === undefined ? {} : { details: e.details }),
    code: e.code,
  };
}

export const notFound = (t: Target): ApiError => ({
  code: 404,
  reason: "NotFound",
  message: `${qualified(t)} "${t.name}" not found`,
  details: details(t),
});

export const alreadyExists = (t: Target): ApiError => ({
  code: 409,
  reason: "AlreadyExists",
  message: `${qualified(t)} "${t.name}" already exists`,
  details: details(t),
});

export const conflict = (
  t: Target,
  why = "the object has been modified; please apply your changes to the latest version and try again",
): ApiError => ({
  code: 409,
  reason: "Conflict",
  message: `Operation cannot be fulfilled on ${qualified(t)} "${t.name}": ${why}`,
  details: details(t),
});

export interface Cause {
  readonly reason:
    | "FieldValueRequired"
    | "FieldValueInvalid"
    | "FieldValueNotSupported"
    | "FieldValueForbidden"
    | "FieldValueDuplicate"
    | "FieldValueTypeInvalid"
    | "FieldValueTooLong"
    | "FieldValueTooMany";
  readonly field: string;
  readonly message: string;
}

/**
 * A number field below its bound as apimachinery's validation words it (ValidateNonnegativeField, and the "> 0"
 * checks of Lease durations); none when `value` is not a number or within the bound.
 */
export function boundCause(field: string, value: unknown, bound: ">= 0" | "> 0"): Cause[] {
  if (typeof value !== "number" || (bound === "> 0" ? value > 0 : value >= 0)) return [];
  const words = bound === "> 0" ? "greater than 0" : "greater than or equal to 0";
  return [{ reason: "FieldValueInvalid", field, message: `Invalid value: ${value}: must be ${words}` }];
}

/** 422: `Service "x" is invalid: spec.ports: Required value`. */
export function invalid(kind: string, group: string, name: string, causes: readonly Cause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(", ")}]`;
  return {
    code: 422,
    reason: "Invalid",
    message: `${kind}${group === "" ? "" : `.${group}`} "${name}" is invalid: ${summary}`,
    details: {
      name,
      ...(group === "" ? {} : { group }),
      kind,
      causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
    },
  };
}

export const badRequest = (message: string): ApiError => ({ code: 400, reason: "BadRequest", message });

export const notFoundPath = (): ApiError => ({
  code: 404,
  reason: "NotFound",
  message: "the server could not find the requested resource",
  details: {},
});

export const methodNotAllowed = (method: string, what: string): ApiError => ({
  code: 405,
  reason: "MethodNotAllowed",
  message: `${method} is not supported on ${what}`,
});

export const gone = (requested: string, oldest: number): ApiError => ({
  code: 410,
  reason: "Expired",
  message: `too old resource version: ${requested} (${oldest})`,
});

export const tooManyRequests = (seconds: number): ApiError => ({
  code: 429,
  reason: "TooManyRequests",
  message: "Too many requests, please try again later.",
  details: { retryAfterSeconds: seconds },
  retryAfterSeconds: seconds,
});

export const internalError = (message: string): ApiError => ({
  code: 500,
  reason: "InternalError",
  message: `Internal error occurred: ${message}`,
  details: { causes: [{ message }] },
});

export const unauthorized = (): ApiError => ({ code: 401, reason: "Unauthorized", message: "Unauthorized" });

export const unsupportedMediaType = (type: string): ApiError => ({
  code: 415,
  reason: "UnsupportedMediaType",
  message: `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${type})`,
});

export const tooLarge = (): ApiError => ({
  code: 413,
  reason: "RequestEntityTooLarge",
  message: "Request entity too large: limit is 3145728",
});

/** 403 with the same wording kube-apiserver's RBAC authorizer produces. */
export function forbidden(
  user: string,
  verb: string,
  resource: string,
  group: string,
  namespace: string,
  name: string,
  subresource: string,
): ApiError {
  const res = subresource === "" ? resource : `${resource}/${subresource}`;
  const what = `${qualified({ resource, group })}${name === "" ? "" : ` "${name}"`}`;
  const scope = namespace === "" ? "at the cluster scope" : `in the namespace "${namespace}"`;
  return {
    code: 403,
    reason: "Forbidden",
    message: `${what} is forbidden: User "${user}" cannot ${verb} resource "${res}" in API group "${group}" ${scope}`,
    details: { ...(name === "" ? {} : { name }), ...(group === "" ? {} : { group }), kind: resource },
  };
}
