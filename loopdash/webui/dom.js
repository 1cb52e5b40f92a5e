// DOM building and number formatting shared by every view.
// The page never parses HTML from strings: text always goes in as text nodes,
// so nothing the loop writes can become markup (the CSP enforces this too).

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(element, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.setAttribute('class', value);
    else if (key === 'text') element.textContent = String(value);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h('a', {href: '#/', class: 'x'}, 'text', otherNode). */
export function h(tag, props = {}, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, props = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

export function byId(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing element #${id}`);
  return found;
}

export function money(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return '$' + Number(value).toFixed(Math.abs(value) < 1 ? 3 : 2);
}

export function integer(value) {
  if (value === null || value === undefined) return '—';
  return Math.round(value).toLocaleString('en-US');
}

/** "1 iteration", "3 iterations". */
export function plural(count, noun) {
  return `${integer(count)} ${noun}${count === 1 ? '' : 's'}`;
}

export function compact(value) {
  if (Math.abs(value) >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value));
}

/** Seconds as "1h 02m 03s", "4m 05s" or "12s"; an em dash when unknown. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (hours > 0) return `${hours}h ${pad(minutes)}m ${pad(secs)}s`;
  if (minutes > 0) return `${minutes}m ${pad(secs)}s`;
  return `${secs}s`;
}

/** A run id (YYYYMMDD_HHMMSS, local time of the loop) as "2026-01-13 20:00:00". */
export function runStart(runId) {
  const m = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(runId || '');
  return m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}` : (runId || '—');
}

/** An ISO-8601 UTC time in the reader's locale, short. */
export function localTime(iso) {
  if (!iso) return '—';
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** A <dl> of [label, value] pairs; values may be nodes. */
export function definitions(pairs, className = 'figures') {
  return h('dl', {class: className}, pairs.map(([label, value, id]) =>
    h('div', {class: 'figure'}, h('dt', {}, label), h('dd', id ? {id} : {}, value))));
}
