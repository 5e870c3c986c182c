// The REST client: bearer token from sessionStorage, JSON in and out, problem+json errors as ApiError.

const SESSION_KEY = "commhub.session";

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

export const session = {
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY));
    } catch {
      return null;
    }
  },
  save(value) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
  },
};

let unauthorized = () => {};

/** Called once when a request made with a token is refused with 401 (expired or revoked). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = session.load()?.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server could not be reached", "check the connection and try again");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data?.title ?? `Request failed (${response.status})`, data?.detail);
    if (response.status === 401 && token) unauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Read until the answer reflects what a live update announced. Updates come straight from the event
 * log, and the read models may lag it by a moment; a 404 counts as "not there yet".
 */
export async function readUntil(read, isCurrent, delays = [60, 120, 250, 500, 1000, 2000]) {
  let last = null;
  for (const delay of [0, ...delays]) {
    if (delay) await sleep(delay);
    try {
      last = await read();
      if (isCurrent(last)) return last;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
  }
  return last;
}
