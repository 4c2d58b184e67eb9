/*
 * api — how the dashboard talks to the node: same-origin fetch with a
 * timeout, answers read whole, errors turned into the node's own
 * {"code","message"} (or a made-up "network"/"timeout" code when the node
 * did not answer).  No function here throws for an HTTP or network error.
 *
 * JSON is parsed with integers of 16 digits or more kept as strings, so a
 * counter value, a version or a user_id beyond 2^53 is shown exactly.
 */

/* The answer: {ok, status, headers, text, json, error}; error is null when ok. */
export async function request(method, url, { body, headers, timeoutMs = 10000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(url, { method, body, headers, cache: 'no-store', signal: ctl.signal });
    const text = method === 'HEAD' ? '' : await res.text();
    let json = null;
    if ((res.headers.get('Content-Type') || '').startsWith('application/json') && text) {
      try {
        json = parseJson(text);
      } catch {
        json = null;
      }
    }
    let error = null;
    if (!res.ok) {
      error = (json && json.error) || { code: `http_${res.status}`, message: res.statusText || `HTTP ${res.status}` };
    }
    return { ok: res.ok, status: res.status, headers: res.headers, text, json, error };
  } catch (e) {
    const timeout = e && e.name === 'AbortError';
    return {
      ok: false,
      status: 0,
      headers: new Headers(),
      text: '',
      json: null,
      error: {
        code: timeout ? 'timeout' : 'network',
        message: timeout ? 'the node did not answer in time' : 'the node could not be reached',
      },
    };
  } finally {
    clearTimeout(timer);
  }
}

export const getJson = (url, opts) => request('GET', url, opts);

/* "404 not_found: key 'a' not found" — for the result panels. */
export function describeError(r) {
  const e = r.error || { code: 'error', message: 'unknown error' };
  return `${r.status ? `${r.status} ` : ''}${e.code}: ${e.message}`;
}

/* Path of a key: every byte but the unreserved ones percent-encoded ("a/b" -> a%2Fb). */
export function kvPath(key) {
  return `/v1/kv/${encodeURIComponent(key)}`;
}

/* "?a=1&b=x" from an object, skipping empty values. */
export function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/*
 * JSON.parse, except that integers with 16 or more digits (beyond what a
 * double holds exactly) become strings of their digits.  Walks the text
 * once to quote them outside string literals only.
 */
export function parseJson(text) {
  let out = '';
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + (c === '-' ? 1 : 0);
      const digitsStart = j;
      while (j < n && text[j] >= '0' && text[j] <= '9') j++;
      const isInteger = j >= n || !'.eE'.includes(text[j]);
      if (isInteger && j - digitsStart >= 16) {
        out += `${text.slice(last, i)}"${text.slice(i, j)}"`;
        last = j;
      }
      while (j < n && /[0-9.eE+-]/.test(text[j])) j++;
      i = j;
    } else {
      i++;
    }
  }
  return JSON.parse(out + text.slice(last));
}

/* A JSON string literal (for request bodies built by hand to keep 64-bit ids exact). */
export function jsonString(s) {
  return JSON.stringify(String(s));
}
