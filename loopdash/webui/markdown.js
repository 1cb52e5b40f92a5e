// Log entries as what they are: Markdown (tables, fenced code, nested lists,
// links, any script), parsed by markdown-it (vendor/, see vendor/README.txt)
// and built into DOM nodes here from its tokens. No HTML string is ever made
// or parsed: raw HTML in a log (markdown-it's html option is off) arrives as
// text, text only becomes text nodes, elements come from a fixed list and
// links only to http(s) and mailto, so the page's Trusted Types policy
// ('none') and CSP hold without a sanitizer.

import markdownit from './vendor/markdown-it.js';
import {h} from './dom.js';

const md = markdownit({html: false, linkify: true, breaks: true, typographer: false});

// Block and inline tags an entry may produce; headings inside an entry are
// shown smaller than the page's own (an entry sits under an h3).
const TAGS = new Map([
  ['p', 'p'], ['ul', 'ul'], ['ol', 'ol'], ['li', 'li'], ['blockquote', 'blockquote'],
  ['table', 'table'], ['thead', 'thead'], ['tbody', 'tbody'], ['tr', 'tr'], ['th', 'th'], ['td', 'td'],
  ['strong', 'strong'], ['em', 'em'], ['s', 's'],
  ['h1', 'h4'], ['h2', 'h4'], ['h3', 'h5'], ['h4', 'h6'], ['h5', 'h6'], ['h6', 'h6'],
]);
const SAFE_LINK = /^(https?:|mailto:)/i;

function attr(token, name) {
  const found = (token.attrs || []).find(([key]) => key === name);
  return found ? found[1] : null;
}

function openElement(token) {
  if (token.type === 'link_open') {
    const href = attr(token, 'href') || '';
    if (!SAFE_LINK.test(href)) return h('span', {class: 'md-link'});
    return h('a', {href, rel: 'noopener noreferrer nofollow', target: '_blank'});
  }
  const tag = TAGS.get(token.tag) || 'span';
  const element = h(tag, {});
  if (tag === 'ol') {
    const start = attr(token, 'start');
    if (start && /^\d{1,9}$/.test(start)) element.setAttribute('start', start);
  }
  const style = attr(token, 'style');  // table alignment, as a class (CSP allows no inline style)
  const align = style && /text-align:(left|center|right)/.exec(style);
  if (align) element.classList.add(`align-${align[1]}`);
  if (tag.startsWith('h')) element.classList.add('md-heading');
  return element;
}

function renderInline(children, parent) {
  const stack = [parent];
  for (const token of children || []) {
    const top = stack[stack.length - 1];
    if (token.nesting === 1) {
      const element = openElement(token);
      top.append(element);
      stack.push(element);
    } else if (token.nesting === -1) {
      if (stack.length > 1) stack.pop();
    } else if (token.type === 'code_inline') {
      top.append(h('code', {}, token.content));
    } else if (token.type === 'hardbreak' || token.type === 'softbreak') {
      top.append(h('br'));
    } else if (token.type === 'image') {
      // No images from elsewhere (CSP img-src 'self'): the alt text stands for it.
      top.append(token.content ? `[${token.content}]` : '');
    } else {
      top.append(token.content);  // text, and html_inline that stays text
    }
  }
}

/** The lines of one log entry as a fragment of block elements. */
export function renderLines(lines) {
  const out = document.createDocumentFragment();
  const stack = [out];
  for (const token of md.parse(lines.join('\n'), {})) {
    const top = stack[stack.length - 1];
    if (token.nesting === 1) {
      const element = openElement(token);
      // Tight list items hold their text without a paragraph: keep them inline.
      if (token.type === 'paragraph_open' && token.hidden) { stack.push(top); continue; }
      top.append(element);
      stack.push(element);
    } else if (token.nesting === -1) {
      if (stack.length > 1) stack.pop();
    } else if (token.type === 'inline') {
      renderInline(token.children, top);
    } else if (token.type === 'fence' || token.type === 'code_block') {
      top.append(h('pre', {dir: 'ltr'}, h('code', {}, token.content.replace(/\n$/, ''))));
    } else if (token.type === 'hr') {
      top.append(h('hr'));
    } else if (token.content) {
      top.append(h('p', {}, token.content));  // html_block and anything new: as text
    }
  }
  return out;
}
