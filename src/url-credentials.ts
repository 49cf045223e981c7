/**
 * Credentials in URLs. apk takes a private repository as
 * `http://user:TOKEN@host/<repo>/<libc>` (or `http://TOKEN@host/…`) and sends
 * the userinfo as HTTP Basic; reef's clients accept the same form. Such a URL
 * is a secret: whatever prints or logs one prints it through `redactUrl`.
 */

/**
 * The userinfo of every URL in `text` replaced by `***`: the user part too,
 * since a token may stand there alone. Works on any text (an error message, a
 * URL that does not parse), not only on a valid URL.
 */
export function redactUrl(text: string): string {
  // The authority ends at the first / ? # (or space); its userinfo at the last @ before that
  // (WHATWG URL: "http://u:p@ss@host/" has the password "p@ss").
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi, '$1***@');
}

/**
 * `url` without its userinfo, and the userinfo as an `Authorization: Basic`
 * value (user and password percent-decoded, as apk sends them). Node's fetch
 * refuses a URL that carries credentials, and would print it in its error.
 */
export function splitCredentials(url: URL): { url: URL; authorization: string | undefined } {
  if (url.username === '' && url.password === '') return { url, authorization: undefined };
  const userinfo = `${percentDecode(url.username)}:${percentDecode(url.password)}`;
  const bare = new URL(url.href);
  bare.username = '';
  bare.password = '';
  return { url: bare, authorization: `Basic ${Buffer.from(userinfo, 'utf8').toString('base64')}` };
}

/** The URL parser keeps a stray `%` as it is; so does this, instead of throwing. */
function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
