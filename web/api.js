// The REST API: JSON in and out, the session cookie for auth, an
// Idempotency-Key on every write so that a retry after a lost answer or a
// 503 changes nothing twice.

/** An error answer of the API: `status`, `code`, `message`, `fields`. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || (status === 0 ? 'network' : 'unknown');
    this.fields = error.fields || {};
  }
}

let onUnauthorized = () => {};

/** Called when an authenticated request answers 401 (the session ended). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** A random key (crypto.randomUUID needs a secure context; this does not). */
export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const RETRIES = 3;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends one request and returns the parsed body (null for 204).
 * Network failures, 503 and 429 are retried a few times with the same
 * Idempotency-Key; other errors throw an ApiError.
 */
export async function api(method, path, body, { auth = true, retries = RETRIES } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET') headers['Idempotency-Key'] = randomKey();
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      if (attempt < retries) {
        await sleep(400 * 2 ** attempt);
        continue;
      }
      throw new ApiError(0, { error: { code: 'network', message: 'The forum cannot be reached. Check your connection.' } });
    }
    if ((response.status === 503 || response.status === 429) && attempt < retries) {
      const after = Number(response.headers.get('Retry-After'));
      await sleep(after > 0 && after < 10 ? after * 1000 : 500 * 2 ** attempt);
      continue;
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (response.ok) return data;
    const error = new ApiError(response.status, data);
    if (response.status === 401 && auth) onUnauthorized(error);
    throw error;
  }
}

/** `path?query` from an object, leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '' && value !== false) query.set(key, String(value));
  }
  const s = query.toString();
  return s ? `${path}?${s}` : path;
}
