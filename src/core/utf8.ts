/**
 * Text measured as the Kubernetes API measures it: Go's `len()` of a string counts UTF-8 bytes, so the API's
 * limits (an Event's 1,024-byte message, its 128-byte reportingInstance) are bytes, not JavaScript characters.
 */

const encoder = new TextEncoder();

export const utf8Length = (text: string): number => encoder.encode(text).length;

/** Pure: the longest prefix of `text` of at most `maxBytes` UTF-8 bytes, never splitting a character. */
export function cutUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || utf8Length(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const size = utf8Length(ch);
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end);
}
