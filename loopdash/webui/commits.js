// The git view: the newest commits of the project's branch, a commit's dialog
// (its diffstat and its diff as plain coloured +/- lines, built as text nodes
// like everything else on the page), and the commits of a story, shown beside
// that story's log entries and in its dialog.

import {h, integer, localTime, plural, sync} from './dom.js';
import {Routes} from './routes.js';

/** Commits kept on the page (newest first); older ones are a click away in the API. */
const KEEP = 100;
/** Lines of one file's diff drawn; the rest is counted, not drawn (a 1 MB diff is 13,000 lines). */
const MAX_LINES = 5000;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The story ids of ``ids`` named in ``text`` as whole tokens (as the daemon matches them). */
export function storiesIn(text, ids) {
  if (!ids.length) return [];
  const pattern = new RegExp(`(?<![\\w-])(${[...ids].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|')})(?![\\w])`, 'g');
  return [...new Set([...text.matchAll(pattern)].map((m) => m[1]))];
}

function lineClass(line) {
  if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff --git') || line.startsWith('index ')) return 'meta';
  if (line.startsWith('+')) return 'add';
  if (line.startsWith('-')) return 'del';
  if (line.startsWith('@@')) return 'hunk';
  return 'ctx';
}

function diffBlock(file) {
  if (file.binary) return h('p', {class: 'muted'}, 'Binary file: not shown.');
  if (file.diff === null || file.diff === undefined) {
    return h('p', {class: 'muted'}, 'Too large to show.');
  }
  const lines = file.diff.replace(/\n$/, '').split('\n');
  const shown = lines.slice(0, MAX_LINES);
  const pre = h('pre', {class: 'diff', tabindex: 0},
    shown.map((line) => h('span', {class: `dl ${lineClass(line)}`}, line + '\n')));
  const notes = [];
  if (lines.length > shown.length) notes.push(`${integer(lines.length - shown.length)} more lines not drawn.`);
  if (file.truncated) notes.push('The diff was cut by the daemon (--git-diff-cap).');
  return h('div', {}, pre, notes.length ? h('p', {class: 'muted'}, notes.join(' ')) : null);
}

function statBar(file, widest) {
  const total = file.insertions + file.deletions;
  const cells = widest ? Math.max(1, Math.round((total / widest) * 20)) : 0;
  const plus = total ? Math.round((file.insertions / total) * cells) : 0;
  return h('span', {class: 'statbar', 'aria-hidden': 'true'},
    h('span', {class: 'add'}, '+'.repeat(plus)), h('span', {class: 'del'}, '−'.repeat(cells - plus)));
}

export class CommitsView {
  constructor({api, list, summary, dialog, routes = new Routes()}) {
    this.routes = routes;
    this.api = api;
    this.list = list;
    this.summary = summary;
    this.dialog = dialog;
    this.commits = [];
    this.total = 0;
    this.git = null;
    this.workingTree = null;
    this.byShort = new Map();
    this.byStory = new Map();
    this.listeners = [];
    this.openSha = null;
    dialog.addEventListener('close', () => {
      this.openSha = null;
      if ((this.routes.local(window.location.hash) || '').startsWith('#/commits/')) window.history.replaceState(null, '', this.routes.home());
    });
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  async load() {
    const page = await this.api.get('api/commits', {limit: KEEP});
    this.commits = page.commits;
    this.total = page.total;
    this.git = page.git;
    this.changed();
  }

  /** A commit_added event. */
  added(commit) {
    if (this.byShort.has(commit.short_sha)) return;
    this.commits = [commit, ...this.commits].slice(0, KEEP);
    this.total += 1;
    this.git = {state: 'ok', reason: null};
    this.changed();
  }

  setWorkingTree(tree) {
    this.workingTree = tree || null;
    this.renderSummary();
  }

  changed() {
    this.byShort = new Map(this.commits.map((c) => [c.short_sha, c]));
    this.byStory = new Map();
    for (const commit of this.commits) {
      for (const id of commit.story_ids) {
        if (!this.byStory.has(id)) this.byStory.set(id, []);
        this.byStory.get(id).push(commit);
      }
    }
    this.render();
    for (const listener of this.listeners) listener();
  }

  /** The loaded commits naming story ``id``, newest first. */
  forStory(id) {
    return this.byStory.get(id) || [];
  }

  find(shortSha) {
    return this.byShort.get(shortSha) || null;
  }

  renderSummary() {
    const git = this.git || (this.workingTree && this.workingTree.git);
    const tree = this.workingTree;
    const parts = [];
    if (git && git.state !== 'ok') parts.push(git.reason || git.state);
    else if (git) parts.push(`${plural(this.total, 'commit')}${tree && tree.branch ? ` on ${tree.branch}` : ''}`);
    if (tree && tree.upstream) parts.push(`${tree.ahead} ahead, ${tree.behind} behind ${tree.upstream}`);
    if (tree && tree.changed_files !== null && tree.changed_files !== undefined) {
      parts.push(tree.changed_files === 0 ? 'no uncommitted changes' : `${plural(tree.changed_files, 'file')} changed, not committed`);
    }
    this.summary.textContent = parts.join(' · ') || 'Reading the repository…';
  }

  render() {
    this.renderSummary();
    sync(this.list, ...this.commits.slice(0, 20).map((commit) => commitRow(commit, this.routes)));
  }

  /** Open the dialog of a commit (from the #/commits/<sha> route). */
  async open(sha) {
    this.openSha = sha;
    const known = this.find(sha.slice(0, 7));
    this.dialog.replaceChildren(h('article', {class: 'story-detail commit-detail'},
      h('header', {}, h('h2', {id: 'commit-dialog-title'}, known ? known.subject : sha),
        h('form', {method: 'dialog'}, h('button', {class: 'close', 'aria-label': 'Close'}, '✕'))),
      h('p', {class: 'muted'}, 'Loading the diff…')));
    this.dialog.setAttribute('aria-labelledby', 'commit-dialog-title');
    if (!this.dialog.open) this.dialog.showModal();
    const detail = await this.api.get(`api/commits/${encodeURIComponent(sha)}`);
    if (this.openSha !== sha) return;
    this.fill(detail);
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  fill(detail) {
    const widest = Math.max(0, ...detail.files.map((f) => f.insertions + f.deletions));
    this.dialog.replaceChildren(h('article', {class: 'story-detail commit-detail'},
      h('header', {},
        h('h2', {id: 'commit-dialog-title'}, h('code', {class: 'sha'}, detail.short_sha), ' ', detail.subject),
        h('form', {method: 'dialog'}, h('button', {class: 'close', 'aria-label': 'Close'}, '✕'))),
      h('p', {class: 'story-meta'},
        h('span', {}, detail.author_name), ' · ', h('time', {datetime: detail.time}, localTime(detail.time)),
        ' · ', h('code', {class: 'sha', title: 'Full sha'}, detail.sha),
        ...detail.story_ids.map((id) => [' ', h('a', {class: 'tag', href: this.routes.story(id)}, id)])),
      detail.body ? h('pre', {class: 'commit-body'}, detail.body) : null,
      h('h3', {}, `${plural(detail.files_changed, 'file')} changed, `,
        h('span', {class: 'ins'}, `+${integer(detail.insertions)}`), ' ',
        h('span', {class: 'del'}, `−${integer(detail.deletions)}`)),
      h('table', {class: 'diffstat'},
        h('tbody', {}, detail.files.map((file) => h('tr', {},
          h('td', {class: 'path'}, file.old_path ? `${file.old_path} → ${file.path}` : file.path),
          h('td', {class: 'num'}, file.binary ? 'binary' : h('span', {}, h('span', {class: 'ins'}, `+${file.insertions}`), ' ', h('span', {class: 'del'}, `−${file.deletions}`))),
          h('td', {}, statBar(file, widest)))))),
      detail.files_omitted ? h('p', {class: 'muted'}, `${plural(detail.files_omitted, 'more file')} not listed.`) : null,
      detail.files.map((file) => h('section', {class: 'diff-file'},
        h('h4', {}, h('span', {class: 'file-status'}, file.status), ' ', file.path),
        diffBlock(file)))));
  }
}

/** A commit as one line of a list: sha, subject, its stories, +/−, time; a link to its dialog. */
export function commitRow(commit, routes = new Routes()) {
  return h('li', {class: 'commit-row', dataset: {sha: commit.sha, key: commit.sha}},
    h('a', {href: routes.commit(commit.sha)},
      h('code', {class: 'sha'}, commit.short_sha), ' ',
      h('span', {class: 'commit-subject'}, commit.subject)),
    ' ',
    h('span', {class: 'commit-stat'}, h('span', {class: 'ins'}, `+${integer(commit.insertions)}`), ' ',
      h('span', {class: 'del'}, `−${integer(commit.deletions)}`)),
    ' ',
    h('time', {class: 'muted', datetime: commit.time}, localTime(commit.time)));
}
