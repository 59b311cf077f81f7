/** Kubernetes `metav1.LabelSelector`, as core's own type (no client-library types inside the core). */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

export type SelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";
export const selectorOperators: readonly SelectorOperator[] = ["In", "NotIn", "Exists", "DoesNotExist"];

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values?: readonly string[];
}

export type Labels = Readonly<Record<string, string>>;

/** One problem in a selector; `path` is relative to the selector (e.g. `matchExpressions[0].values`). */
export interface SelectorProblem {
  readonly path: string;
  readonly message: string;
}

// Kubernetes label syntax (apimachinery validation): optional DNS-subdomain prefix, a name of at most 63 chars.
const labelName = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !dnsSubdomain.test(prefix))) {
    return `label key "${key}": prefix must be a DNS subdomain`;
  }
  if (name.length > 63 || !labelName.test(name)) {
    return `label key "${key}": name must be 1-63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`;
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  return value.length <= 63 && labelValue.test(value)
    ? undefined
    : `label value "${value}": must be at most 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`;
}

/** Every problem of a selector, with the rules the API server applies (operators, values present or absent). */
export function validateSelector(selector: LabelSelector): SelectorProblem[] {
  const problems: SelectorProblem[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const p = labelKeyProblem(key) ?? labelValueProblem(value);
    if (p !== undefined) problems.push({ path: `matchLabels.${key}`, message: p });
  }
  (selector.matchExpressions ?? []).forEach((req, i) => {
    const at = `matchExpressions[${i}]`;
    const keyProblem = labelKeyProblem(req.key);
    if (keyProblem !== undefined) problems.push({ path: `${at}.key`, message: keyProblem });
    const values = req.values ?? [];
    if ((req.operator === "In" || req.operator === "NotIn") && values.length === 0) {
      problems.push({ path: `${at}.values`, message: `operator ${req.operator} needs at least one value` });
    }
    if ((req.operator === "Exists" || req.operator === "DoesNotExist") && values.length > 0) {
      problems.push({ path: `${at}.values`, message: `operator ${req.operator} takes no values` });
    }
    values.forEach((v, j) => {
      const p = labelValueProblem(v);
      if (p !== undefined) problems.push({ path: `${at}.values[${j}]`, message: p });
    });
  });
  return problems;
}

/**
 * Kubernetes semantics: all terms must hold; an empty selector matches everything; `NotIn` and `DoesNotExist`
 * match objects that lack the key.
 */
export function matchesSelector(selector: LabelSelector, labels: Labels): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const inValues = value !== undefined && (req.values ?? []).includes(value);
    const holds =
      req.operator === "In"
        ? has && inValues
        : req.operator === "NotIn"
          ? !has || !inValues
          : req.operator === "Exists"
            ? has
            : !has;
    if (!holds) return false;
  }
  return true;
}

/** Canonical text of a label map (sorted), to compare two Services' pod selectors. */
export const labelsKey = (labels: Labels): string =>
  Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
