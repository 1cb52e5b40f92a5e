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

/**
 * Make `parent`'s children the given ones (nodes or strings; null, false and
 * undefined skipped), changing only what differs from what is shown.
 *
 * Sections render again on every status update: replaced whole, they lost the
 * reader's focus, selection and a click in progress (pressed on the old link,
 * released on its copy: no click at all). Here a shown node is kept and brought
 * up to date when it stands for the same thing: an element with the same
 * `data-key` (or id) wherever it is, so a row stays its run's row when a newer
 * run is put above it; else the unkeyed node in the same place, if it has the
 * same tag and, for a link, the same href (a pressed link never turns into
 * another). Its attributes and children are then brought up to date the same
 * way, and a text node takes the new text. The nodes given must carry no
 * listeners (the views' renders add none), since an old node is kept in place
 * of a new one. Written here, not morphdom: the renders need only this, and
 * morphdom's HTML-string paths have no place under the page's Trusted Types.
 */
export function sync(parent, ...children) {
  const wanted = [];
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    wanted.push(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  const keyed = new Map();
  for (const old of parent.childNodes) {
    const key = keyOf(old);
    if (key !== null) keyed.set(key, old);
  }
  let cursor = parent.firstChild;  // where the next wanted node goes
  for (const node of wanted) {
    const key = keyOf(node);
    let match = null;
    if (key !== null) {
      match = keyed.get(key) || null;
      keyed.delete(key);
    } else if (cursor && keyOf(cursor) === null && sameThing(cursor, node)) {
      match = cursor;
    }
    if (!match || (key !== null && !sameThing(match, node))) {
      parent.insertBefore(node, cursor);
      continue;
    }
    update(match, node);
    if (match === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(match, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

function keyOf(node) {
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  return node.getAttribute('data-key') ?? (node.id || null);
}

function sameThing(old, node) {
  if (old.nodeType !== node.nodeType) return false;
  if (old.nodeType === Node.TEXT_NODE) return true;
  if (old.nodeType !== Node.ELEMENT_NODE) return false;
  return old.nodeName === node.nodeName && old.namespaceURI === node.namespaceURI
    && old.getAttribute('href') === node.getAttribute('href');
}

function update(old, node) {
  if (old.isEqualNode(node)) return;
  if (old.nodeType === Node.TEXT_NODE) {
    old.data = node.data;
    return;
  }
  for (const {name} of Array.from(old.attributes)) {
    if (!node.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const {name, value} of Array.from(node.attributes)) {
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  sync(old, ...Array.from(node.childNodes));
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
