// The small part of Markdown that progress.txt entries use — bold, emphasis,
// inline code, bullets, numbered lists, headings, rules and fenced code —
// rendered as DOM nodes. Text only ever becomes text nodes, so an entry can
// never inject markup.

import {h} from './dom.js';

const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*([^*]+(?:\*(?!\*)[^*]*)*)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*/g;

/** Inline markup of one line as a list of nodes. */
export function inline(text) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) { // matchAll copies the regex: safe under recursion
    if (m.index > last) nodes.push(text.slice(last, m.index));
    if (m[1]) nodes.push(h('code', {}, m[2].trim() || m[2]));
    else if (m[3] !== undefined) nodes.push(h('strong', {}, inline(m[3])));
    else nodes.push(h('em', {}, inline(m[4])));
    last = m.index + m[0].length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const NUMBERED = /^(\s*)\d+[.)]\s+(.*)$/;
const HEADING = /^#{1,6}\s+(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const FENCE = /^\s*(```|~~~)/;

/** The lines of one log entry as a fragment of block elements. */
export function renderLines(lines) {
  const out = document.createDocumentFragment();
  let list = null;
  let listKind = null;
  let code = null;
  let fence = null;
  const endList = () => { list = null; listKind = null; };
  for (const line of lines) {
    if (code) {
      if (line.trim().startsWith(fence)) { code = null; fence = null; continue; }
      code.textContent += (code.textContent ? '\n' : '') + line;
      continue;
    }
    const fenced = FENCE.exec(line);
    if (fenced) {
      endList();
      fence = fenced[1];
      code = h('code');
      out.append(h('pre', {}, code));
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = bullet ? null : NUMBERED.exec(line);
    if ((bullet || numbered) && !RULE.test(line)) {
      const kind = bullet ? 'ul' : 'ol';
      const match = bullet || numbered;
      if (listKind !== kind) {
        list = h(kind);
        listKind = kind;
        out.append(list);
      }
      list.append(h('li', {class: match[1].length >= 2 ? 'nested' : null}, inline(match[2])));
      continue;
    }
    endList();
    if (line.trim() === '') continue;
    if (RULE.test(line)) { out.append(h('hr')); continue; }
    const heading = HEADING.exec(line);
    if (heading) { out.append(h('p', {class: 'md-heading'}, h('strong', {}, inline(heading[1])))); continue; }
    out.append(h('p', {}, inline(line)));
  }
  return out;
}
