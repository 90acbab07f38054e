// The filter's query language: whitespace-separated terms, all of which must match. `key:value` with
// a known key is an exact test of one field (`port:443`, `state:pending`, `user:root`, `proto:udp`,
// `host:example.com`, `pid:42`, `dir:in`, `trust:insecure`); anything else is text, matched against
// what the row shows. Pure: no table, no rows.

export const FIELD_KEYS = ['port', 'state', 'user', 'proto', 'host', 'pid', 'dir', 'trust'] as const;
export type FieldKey = (typeof FIELD_KEYS)[number];

export type QueryTerm =
  | { kind: 'field'; key: FieldKey; value: string }
  | { kind: 'text'; text: string };

const ALIASES: Record<string, FieldKey> = { protocol: 'proto', direction: 'dir', uid: 'user' };

function fieldKey(name: string): FieldKey | undefined {
  const lower = name.toLowerCase();
  return (FIELD_KEYS as readonly string[]).includes(lower) ? (lower as FieldKey) : ALIASES[lower];
}

/** Terms of a query, lower-cased. `127.0.0.1:8000` or `[::1]:53` stay text (their "key" is not a
 *  field name); `port:` with nothing after it is ignored while it is being typed. */
export function parseQuery(query: string): QueryTerm[] {
  const terms: QueryTerm[] = [];
  for (const word of query.toLowerCase().split(/\s+/)) {
    if (!word) continue;
    const colon = word.indexOf(':');
    const key = colon > 0 ? fieldKey(word.slice(0, colon)) : undefined;
    if (key) {
      const value = word.slice(colon + 1);
      if (value) terms.push({ kind: 'field', key, value });
      continue;
    }
    terms.push({ kind: 'text', text: word });
  }
  return terms;
}

/** `crl` in `curl`: every character of `needle`, in order. */
export function isSubsequence(needle: string, hay: string): boolean {
  let at = 0;
  for (let i = 0; i < hay.length && at < needle.length; i++) if (hay.charCodeAt(i) === needle.charCodeAt(at)) at++;
  return at === needle.length;
}
