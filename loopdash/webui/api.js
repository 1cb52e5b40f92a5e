// The REST client: every call carries the bearer token; every failure becomes
// an ApiError whose status is the HTTP code (0 when the daemon did not answer).
// Every answer names the stream event it is as new as (X-Loopdash-Event-Id):
// fetchWithId() hands it over, so a view applies only the events after it.

/** Whether event id `id` ("<boot>-<seq>") comes after `than`; a missing id or another boot: yes. */
export function isNewer(id, than) {
  if (!id || !than) return true;
  const [boot, seq] = splitId(id);
  const [thanBoot, thanSeq] = splitId(than);
  return boot !== thanBoot || seq > thanSeq;
}

/** The oldest of some event ids of one boot (null when any is missing or boots differ). */
export function oldestId(ids) {
  let oldest = null;
  for (const id of ids) {
    if (!id) return null;
    if (oldest === null) oldest = id;
    else if (splitId(id)[0] !== splitId(oldest)[0]) return null;
    else if (!isNewer(id, oldest)) oldest = id;
  }
  return oldest;
}

/** Whether event id `id` is strictly older than `than` (same boot, smaller sequence number). */
export function isOlder(id, than) {
  if (!id || !than) return false;
  const [boot, seq] = splitId(id);
  const [thanBoot, thanSeq] = splitId(than);
  return boot === thanBoot && seq < thanSeq;
}

function splitId(id) {
  const cut = id.lastIndexOf('-');
  return [id.slice(0, cut), Number(id.slice(cut + 1))];
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

/** Routes of the daemon as a whole: never below /api/projects/<id>/ (docs/projects.md). */
const DAEMON_WIDE = /^api\/(projects|stream|health|openapi)(\/|$|\?)/;

export class Api {
  /** `projectId`: every per-project call goes to api/projects/<id>/...; null: the plain routes. */
  constructor(token, projectId = null) {
    this.token = token;
    this.projectId = projectId;
  }

  /** The same token, bound to one project of a multi-project daemon. */
  forProject(projectId) {
    return new Api(this.token, projectId);
  }

  /** `path` ('api/status', ...) as this client sends it: the project's own route when bound to one. */
  route(path) {
    if (this.projectId === null || DAEMON_WIDE.test(path) || !path.startsWith('api/')) return path;
    return `api/projects/${encodeURIComponent(this.projectId)}/${path.slice(4)}`;
  }

  async request(method, path, params) {
    return (await this.exchange(method, path, params)).body;
  }

  /** {body, eventId}: the answer and the id of the last event it includes. */
  async exchange(method, path, params) {
    const query = params ? '?' + new URLSearchParams(params).toString() : '';
    let response;
    try {
      response = await fetch(this.route(path) + query, {
        method,
        cache: 'no-store',
        headers: {Authorization: `Bearer ${this.token}`, Accept: 'application/json'},
      });
    } catch (error) {
      throw new ApiError(0, 'The daemon did not answer');
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
      const error = new ApiError(response.status, message);
      error.eventId = response.headers.get('X-Loopdash-Event-Id');
      throw error;
    }
    return {body, eventId: response.headers.get('X-Loopdash-Event-Id')};
  }

  get(path, params) {
    return this.request('GET', path, params);
  }

  fetchWithId(path, params) {
    return this.exchange('GET', path, params);
  }

  post(path) {
    return this.request('POST', path);
  }
}
