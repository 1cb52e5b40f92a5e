// The overview of a multi-project daemon (docs/projects.md): one card per loop
// from GET /api/projects, kept current by project_added / project_updated /
// project_removed on the combined stream. Loops that need attention come first;
// a text box filters by name, id, path or machine; the tab's title counts states.
// Each card is a link: to #/p/<id> for this machine's loops, to the loop's own
// daemon for another machine's (its routes are not served here).

import {h, money, sync} from './dom.js';
import {roughly} from './execution.js';
import {RUN_STATE_LABELS} from './history.js';

/** Whether a /api/projects answer is a fleet (an overview), not one project's page. */
export function isFleet(list) {
  const projects = (list && list.projects) || [];
  return list.total !== 1 || projects.length !== 1 || Boolean(projects[0].machine);
}

/** A row's state word: the daemon's, 'unreachable' for a remote daemon that cannot be read. */
export function rowState(row) {
  if (row.reachable === false || row.state === 'unknown') return 'unreachable';
  if (row.state) return row.state;
  return row.is_running ? 'running' : 'idle'; // a daemon from before run states
}

/**
 * How urgently a loop needs a look, smallest first: stalled, then failed
 * iterations in the current run, then stopped, running, finished, idle, and
 * last a remote loop that cannot be read (`loopdash watch --all`'s order).
 */
export function attention(row) {
  const state = rowState(row);
  if (state === 'unreachable') return 6;
  if (state === 'stalled') return 0;
  if ((row.failed_iterations || 0) > 0) return 1;
  return {stopped: 2, running: 3, finished: 4, idle: 5}[state] ?? 6;
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The rows in overview order: attention, then lower-cased name, then id (stable between renders). */
export function ordered(rows) {
  return [...rows].sort((a, b) => attention(a) - attention(b)
    || compare(a.name.toLowerCase(), b.name.toLowerCase()) || compare(a.id, b.id));
}

/** Whether a row matches the filter text (case-insensitive, in its name, id, path or machine). */
export function matches(row, text) {
  const needle = text.trim().toLowerCase();
  if (!needle) return true;
  return [row.name, row.id, row.path, row.machine].some((field) => (field || '').toLowerCase().includes(needle));
}

/** States in the order the tab title names them. */
const COUNTED = ['running', 'stalled', 'stopped', 'unreachable', 'finished', 'idle'];

/** "3 running · 1 stalled": the number of loops in each state, none that has none. */
export function stateCounts(rows) {
  const counts = new Map();
  for (const row of rows) counts.set(rowState(row), (counts.get(rowState(row)) || 0) + 1);
  return COUNTED.filter((state) => counts.get(state)).map((state) => `${counts.get(state)} ${state}`).join(' · ');
}

const STATE_WORDS = {...RUN_STATE_LABELS, unreachable: 'Unreachable'};

/** Where a card leads: #/p/<id>, or a remote loop's own daemon (when its row says where). */
function cardHref(row) {
  if (!row.machine) return `#/p/${encodeURIComponent(row.id)}`;
  if (!row.url) return null;
  const own = row.id.slice(row.id.indexOf('~') + 1);
  return `${row.url.replace(/\/+$/, '')}/#/p/${encodeURIComponent(own)}`;
}

export class OverviewView {
  constructor({list, summary, filter, clock = () => performance.now()}) {
    this.list = list;
    this.summary = summary;
    this.filterBox = filter;
    this.clock = clock;
    /** id -> {row, at}: each row and when it came (its quiet_for moves on from then). */
    this.rows = new Map();
    /** id -> the card's <li>, kept across renders so a focused card keeps its focus. */
    this.items = new Map();
    this.onTitle = () => {};
    filter.addEventListener('input', () => this.render());
    setInterval(() => this.tick(), 1000);
  }

  setRows(rows) {
    this.rows = new Map(rows.map((row) => [row.id, {row, at: this.clock()}]));
    this.render();
  }

  upsert(row) {
    this.rows.set(row.id, {row, at: this.clock()});
    this.render();
  }

  remove(id) {
    this.rows.delete(id);
    this.render();
  }

  get(id) {
    const entry = this.rows.get(id);
    return entry ? entry.row : null;
  }

  /** The tab title of the overview: the state counts, then the name. */
  title() {
    const counts = stateCounts([...this.rows.values()].map((entry) => entry.row));
    return counts ? `${counts} · loopdash` : 'loopdash';
  }

  render() {
    const rows = ordered([...this.rows.values()].map((entry) => entry.row));
    for (const [id, item] of this.items) {
      if (!this.rows.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
    const text = this.filterBox.value;
    let shown = 0;
    let previous = null;
    for (const row of rows) {
      let item = this.items.get(row.id);
      if (!item) {
        item = h('li', {class: 'project-item'});
        this.items.set(row.id, item);
      }
      this.fill(item, row);
      item.hidden = !matches(row, text);
      if (!item.hidden) shown += 1;
      // Moved only when out of place: moving a node takes the focus from it.
      const wanted = previous ? previous.nextSibling : this.list.firstChild;
      if (wanted !== item) this.list.insertBefore(item, wanted);
      previous = item;
    }
    const total = rows.length;
    if (total === 0) this.summary.textContent = 'No loop project found yet; new ones show up here as they appear.';
    else if (shown === total) this.summary.textContent = `${total} ${total === 1 ? 'loop' : 'loops'}, those needing attention first.`;
    else this.summary.textContent = `Showing ${shown} of ${total} loops matching “${text.trim()}”.`;
    this.onTitle(this.title());
  }

  /** One card: a link (or, for a remote loop without an address, a plain box) with the row's figures. */
  fill(item, row) {
    const state = rowState(row);
    const href = cardHref(row);
    const signature = JSON.stringify([row, href]);
    if (item.dataset.signature === signature) return;
    item.dataset.signature = signature;
    item.dataset.projectId = row.id;
    item.dataset.state = state;
    const failed = row.failed_iterations || 0;
    const story = row.current_story;
    const done = row.completed_stories || 0;
    const total = row.total_stories || 0;
    const quiet = h('span', {class: 'project-quiet'});
    const children = [
      h('span', {class: 'project-head'},
        h('span', {class: 'project-name'}, row.name),
        row.machine ? h('span', {class: 'tag project-machine'}, `on ${row.machine}`) : null,
        h('span', {class: `badge state-${state}`}, STATE_WORDS[state] || state),
        failed ? h('span', {class: 'badge project-failed'}, `${failed} failed ${failed === 1 ? 'iteration' : 'iterations'}`) : null),
      h('span', {class: 'project-story'}, story
        ? [h('span', {class: 'story-id'}, story.id), story.title ? ` ${story.title}` : '']
        : h('span', {class: 'muted'}, 'No current story')),
      h('span', {class: 'progress-row'},
        h('progress', {max: Math.max(total, 1), value: done, 'aria-hidden': 'true'}),
        h('span', {class: 'project-progress'}, `${done} of ${total} stories (${Math.round(row.progress_pct || 0)} %)`)),
      h('span', {class: 'project-figures'},
        h('span', {class: 'project-cost'}, `Cost ${money(row.cost_so_far)}`), ' · ', quiet),
      h('span', {class: 'project-path muted'}, row.path),
      row.machine && !href ? h('span', {class: 'muted'}, `Open it on ${row.machine}'s own loopdash page.`) : null,
    ];
    const tag = href ? 'A' : 'DIV';
    let card = item.firstElementChild;
    if (!card || card.tagName !== tag) {
      // Made once per kind and refilled after: a focused card keeps its focus through updates.
      card = h(tag.toLowerCase(), {class: 'project-card'});
      item.replaceChildren(card);
    }
    if (href) card.setAttribute('href', href);
    if (row.machine && href) card.setAttribute('rel', 'noopener noreferrer');
    sync(card, children);
    this.tickOne(row.id);
  }

  tick() {
    for (const id of this.rows.keys()) this.tickOne(id);
  }

  /** A card's quiet time: the daemon's figure moved on by the seconds since the row came. */
  tickOne(id) {
    const entry = this.rows.get(id);
    const item = this.items.get(id);
    if (!entry || !item) return;
    const span = item.querySelector('.project-quiet');
    if (!span) return;
    const {row, at} = entry;
    const text = row.quiet_for === null || row.quiet_for === undefined
      ? 'no activity yet'
      : `quiet for ${roughly(row.quiet_for + (this.clock() - at) / 1000)}`;
    if (span.textContent !== text) span.textContent = text;
  }
}
