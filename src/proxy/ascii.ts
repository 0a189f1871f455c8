/** Case-insensitive comparisons of the request's ASCII words, on the hot path. */

/**
 * Whether `text` starts with `letters` (lower-case a–z), in any case — without the copies that
 * slice() and toLowerCase() would make on every request. `c | 0x20` is a letter's lower case, and
 * only the two cases of a letter map to it.
 */
export function startsWithLetters(text: string, letters: string): boolean {
  if (text.length < letters.length) return false;
  for (let i = 0; i < letters.length; i++) if ((text.charCodeAt(i) | 0x20) !== letters.charCodeAt(i)) return false;
  return true;
}
