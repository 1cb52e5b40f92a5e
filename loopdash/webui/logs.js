// The progress log: the newest page of entries first, older pages on demand,
// live appends (an entry may be sent again when it grows), a text filter, and
// auto-scroll that pauses as soon as the reader scrolls up.

import {h, sync} from './dom.js';
import {isNewer, isOlder} from './api.js';
import {renderLines} from './markdown.js';
import {Routes} from './routes.js';

const PAGE = 50;
/** A page left open for days keeps at most this many entries; older ones page back in. */
const KEEP = 500;

export class LogsView {
  constructor({
    api, guard, scroller, list, olderButton, followBox, filterBox, counter, commitsFor = () => [], routes = new Routes(),
  }) {
    this.routes = routes;
    this.api = api;
    /** The commits of the story an entry is about (shown beside it). */
    this.commitsFor = commitsFor;
    this.scroller = scroller;
    this.list = list;
    this.olderButton = olderButton;
    this.followBox = followBox;
    this.filterBox = filterBox;
    this.counter = counter;
    this.start = 0; // index (offset in /api/logs) of the first loaded entry
    this.entries = []; // {timestamp, lines, element}
    this.total = 0;
    this.lastScrollTop = 0;
    this.eventId = null; // the stream event the shown entries are as new as
    olderButton.addEventListener('click', () => guard(this.loadOlder()));
    followBox.addEventListener('change', () => {
      if (followBox.checked) this.scrollToEnd();
    });
    filterBox.addEventListener('input', () => this.applyFilter());
    scroller.addEventListener('scroll', () => this.onScroll(), {passive: true});
  }

  get end() {
    return this.start + this.entries.length;
  }

  /** Whether a log event (id) is newer than what is shown; if so, it is what is shown now. */
  accept(id) {
    if (!isNewer(id, this.eventId)) return false;
    this.eventId = id;
    return true;
  }

  /** Load the newest page (replacing whatever was shown). */
  async loadLatest() {
    let page;
    let eventId;
    for (let attempt = 0; ; attempt += 1) {
      const head = await this.api.get('api/logs', {limit: 0});
      const offset = Math.max(0, head.total - PAGE);
      ({body: page, eventId} = await this.api.fetchWithId('api/logs', {limit: PAGE, offset}));
      // An event applied meanwhile is newer than this answer, or the file shrank
      // between the two requests: ask again (the next answer is newer than both).
      const stale = isOlder(eventId, this.eventId) || (offset > 0 && page.total <= offset);
      if (!stale || attempt >= 3) break;
    }
    this.eventId = eventId;
    this.start = page.offset;
    this.entries = [];
    this.list.replaceChildren();
    this.total = page.total;
    for (const entry of page.logs) this.appendEntry(entry);
    this.afterChange(true);
  }

  /** Fetch entries past the last loaded one (polling, or after a gap in live indexes). */
  async loadNewer() {
    const {body: page, eventId} = await this.api.fetchWithId('api/logs', {limit: 1000, offset: this.end});
    if (page.total < this.end) return this.loadLatest(); // the file was replaced (a new run)
    if (!isOlder(eventId, this.eventId)) this.eventId = eventId;
    this.total = page.total;
    for (const entry of page.logs) this.appendEntry(entry);
    this.afterChange(page.logs.length > 0);
  }

  async loadOlder() {
    if (this.start === 0) return;
    const offset = Math.max(0, this.start - PAGE);
    const page = await this.api.get('api/logs', {limit: this.start - offset, offset});
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    const nodes = page.logs.map((entry) => this.entryNode(entry));
    this.entries = [...page.logs.map((entry, i) => ({...entry, element: nodes[i]})), ...this.entries];
    this.list.prepend(...nodes);
    this.start = offset;
    this.total = Math.max(this.total, page.total);
    this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom; // keep the reader's place
    this.lastScrollTop = this.scroller.scrollTop;
    this.afterChange(false);
    if (this.start === 0) this.list.firstElementChild?.querySelector('h3')?.focus?.();
  }

  /** A log_appended event: {index, timestamp, lines}. */
  async appended(entry) {
    const index = entry.index;
    if (index < this.start) return;
    if (index < this.end) {
      const old = this.entries[index - this.start];
      const node = this.entryNode(entry);
      old.element.replaceWith(node);
      this.entries[index - this.start] = {...entry, element: node};
      this.afterChange(true);
    } else if (index === this.end) {
      this.total = Math.max(this.total, index + 1);
      this.appendEntry(entry);
      this.afterChange(true);
    } else {
      await this.loadNewer();
    }
  }

  appendEntry(entry) {
    const node = this.entryNode(entry);
    this.entries.push({...entry, element: node});
    this.list.append(node);
  }

  entryNode(entry) {
    const commits = h('ul', {class: 'entry-commits', 'aria-label': 'Commits of this story'});
    const node = h('li', {class: 'log-entry'},
      h('article', {},
        h('h3', {tabindex: -1}, h('time', {}, entry.timestamp || 'Undated entry'), entryLabel(entry)),
        h('div', {class: 'md', dir: 'auto'}, renderLines(entry.lines || [])),
        // An entry over the daemon's --max-entry-bytes arrives cut (docs/limits.md).
        entry.truncated && h('p', {class: 'log-truncated'},
          `Cut here: the whole entry is ${Number(entry.size).toLocaleString()} bytes; see progress.txt.`),
        commits));
    this.fillCommits(commits, entry);
    node.hidden = !this.matches(entry);
    return node;
  }

  fillCommits(slot, entry) {
    const commits = this.commitsFor(entry);
    slot.hidden = commits.length === 0;
    sync(slot, ...commits.map((commit) => h('li', {dataset: {key: commit.sha}},
      h('a', {class: 'commit-chip', href: this.routes.commit(commit.sha), title: commit.subject},
        h('code', {}, commit.short_sha), ' ', commit.subject))));
  }

  /** The commits known changed (loaded, or one added): refill every entry's list. */
  refreshCommits() {
    for (const entry of this.entries) {
      const slot = entry.element.querySelector('.entry-commits');
      if (slot) this.fillCommits(slot, entry);
    }
  }

  matches(entry) {
    const needle = this.filterBox.value.trim().toLowerCase();
    if (!needle) return true;
    const label = [...(entry.story_ids || []), entry.title || ''].join(' ');
    return `${entry.timestamp}\n${label}\n${(entry.lines || []).join('\n')}`.toLowerCase().includes(needle);
  }

  applyFilter() {
    for (const entry of this.entries) entry.element.hidden = !this.matches(entry);
    this.afterChange(true);
  }

  /** While following, drop the oldest entries beyond KEEP (they stay reachable by paging). */
  trim() {
    if (!this.followBox.checked || this.entries.length <= KEEP) return;
    const dropped = this.entries.splice(0, this.entries.length - KEEP);
    for (const entry of dropped) entry.element.remove();
    this.start += dropped.length;
  }

  afterChange(grew) {
    if (grew) this.trim();
    this.olderButton.hidden = this.start === 0;
    this.olderButton.textContent = `Load older entries (${this.start} more)`;
    const shown = this.entries.filter((e) => !e.element.hidden).length;
    const filtered = this.filterBox.value.trim() !== '';
    this.counter.textContent = this.total === 0
      ? 'No entries in progress.txt yet.'
      : filtered
        ? `${shown} of ${this.entries.length} loaded entries match (${this.total} in all).`
        : `Showing entries ${this.start + 1}–${this.end} of ${this.total}.`;
    if (grew && this.followBox.checked) this.scrollToEnd();
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastScrollTop = this.scroller.scrollTop;
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    const atEnd = this.scroller.scrollHeight - top - this.scroller.clientHeight < 4;
    if (top < this.lastScrollTop - 2 && !atEnd && this.followBox.checked) {
      this.followBox.checked = false; // the reader scrolled up: stop following
    } else if (atEnd && !this.followBox.checked && top > this.lastScrollTop) {
      this.followBox.checked = true; // back at the newest entry: follow again
    }
    this.lastScrollTop = top;
  }
}

// What a ralph-family header says beyond its time (story ids, title, status word):
// claude-loop's entries carry none of these fields and show the time alone.
function entryLabel(entry) {
  const parts = [...(entry.story_ids || []), entry.title].filter(Boolean).join(' ');
  if (!parts && !entry.status) return null;
  return h('span', {class: 'entry-label', dir: 'auto'},
    parts ? ` — ${parts}` : '', entry.status ? h('span', {class: 'tag'}, entry.status) : null);
}
