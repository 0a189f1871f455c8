/**
 * Text from a configuration (a value, a file name, a key) inside a problem line. Quoted and
 * escaped, so a newline or a control character in it cannot end the line and forge another
 * problem, and cut short, so a long value cannot flood the terminal. Never used for a secret.
 */

const MAX_QUOTED = 80;

/** `"value"` with JSON escapes (line and paragraph separators included), at most MAX_QUOTED characters. */
export function quote(value: string): string {
  const cut = value.length > MAX_QUOTED ? `${value.slice(0, MAX_QUOTED)}…` : value;
  return escapeLineBreaks(JSON.stringify(cut));
}

/**
 * The last guard before a line is printed: any control character left (C0, DEL, C1, U+2028/9)
 * is written as an escape. A message is one line whatever it was built from.
 */
export function singleLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return escapeLineBreaks(
    text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
}

function escapeLineBreaks(text: string): string {
  return text.replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}
