// The REST client: every call carries the bearer token; every failure becomes
// an ApiError whose status is the HTTP code (0 when the daemon did not answer).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async request(method, path, params) {
    const query = params ? '?' + new URLSearchParams(params).toString() : '';
    let response;
    try {
      response = await fetch(path + query, {
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
      throw new ApiError(response.status, message);
    }
    return body;
  }

  get(path, params) {
    return this.request('GET', path, params);
  }

  post(path) {
    return this.request('POST', path);
  }
}
