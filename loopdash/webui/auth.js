// Where the token comes from and where it is kept.
// A URL fragment never reaches the server (nor its log), so `loopdash start`
// prints http://host:port/#token=...; the page takes it and removes it from
// the address bar. The token is kept for the tab (sessionStorage), or on this
// device (localStorage) when the user asks to be remembered.

const KEY = 'loopdash.token';

/** The token in the fragment (#token=...), removed from the address bar; or null. */
export function takeTokenFromFragment() {
  const fragment = window.location.hash.replace(/^#/, '');
  if (fragment.startsWith('/')) return null;
  const token = new URLSearchParams(fragment).get('token');
  if (!token) return null;
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
  return token.trim();
}

export function storedToken() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

export function isRemembered() {
  return localStorage.getItem(KEY) !== null;
}

export function keepToken(token, remember) {
  sessionStorage.setItem(KEY, token);
  if (remember) localStorage.setItem(KEY, token);
  else localStorage.removeItem(KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}
