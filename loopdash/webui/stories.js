// The stories grid and a story's detail dialog.
// A story's state on the page: completed (passes), in progress (the story the
// running loop works on now), blocked (a dependency in the plan is not completed yet),
// pending (everything else). Cards are updated in place, keyed by story id,
// so a live update never steals keyboard focus.

import {h, money, plural, sync} from './dom.js';
import {Routes} from './routes.js';

export const STATE_LABELS = {
  completed: 'Completed',
  'in-progress': 'In progress',
  blocked: 'Blocked',
  pending: 'Pending',
};

export function storyState(story, byId, status) {
  if (story.status === 'completed') return 'completed';
  const current = status && status.is_running && status.current_story;
  if (current && current.id === story.id) return 'in-progress';
  // As the daemon picks the next story (derive/status.py next_story): a dependency
  // that names no story in the plan does not block (a typo must not stall the view).
  const deps = story.dependencies || [];
  if (deps.some((id) => byId.has(id) && byId.get(id).status !== 'completed')) return 'blocked';
  return 'pending';
}

function complexityLabel(story) {
  return story.estimatedComplexity ? String(story.estimatedComplexity) : 'unrated';
}

export class StoriesView {
  constructor({grid, summary, dialog, commitOf = () => null, routes = new Routes()}) {
    this.routes = routes;
    /** A loaded commit by short sha (for its subject), or null. */
    this.commitOf = commitOf;
    this.grid = grid;
    this.summary = summary;
    this.dialog = dialog;
    this.cards = new Map();
    this.stories = [];
    this.byId = new Map();
    this.status = null;
    this.openId = null;
    dialog.addEventListener('close', () => {
      this.openId = null;
      if (this.isOpenRoute()) window.history.replaceState(null, '', this.routes.home());
    });
  }

  setStories(stories) {
    this.stories = [...stories];
    this.render();
  }

  upsert(story) {
    const index = this.stories.findIndex((s) => s.id === story.id);
    if (index >= 0) this.stories[index] = story;
    else this.stories.push(story);
    this.render();
  }

  setStatus(status) {
    this.status = status;
    this.render();
  }

  render() {
    this.byId = new Map(this.stories.map((story) => [story.id, story]));
    const counts = {completed: 0, 'in-progress': 0, blocked: 0, pending: 0};
    const seen = new Set();
    const ordered = this.stories.map((story) => {
      const state = storyState(story, this.byId, this.status);
      counts[state] += 1;
      seen.add(story.id);
      return this.card(story, state);
    });
    for (const id of [...this.cards.keys()]) {
      if (!seen.has(id)) {
        this.cards.get(id).item.remove();
        this.cards.delete(id);
      }
    }
    ordered.forEach((item, index) => {
      if (this.grid.children[index] !== item) this.grid.insertBefore(item, this.grid.children[index] || null);
    });
    this.summary.textContent = this.stories.length === 0
      ? 'No stories in prd.json.'
      : Object.entries(counts).map(([state, n]) => `${n} ${STATE_LABELS[state].toLowerCase()}`).join(' · ');
    if (this.openId && this.byId.has(this.openId)) this.fillDialog(this.byId.get(this.openId));
  }

  card(story, state) {
    let card = this.cards.get(story.id);
    if (!card) {
      const parts = {
        id: h('span', {class: 'story-id'}),
        title: h('span', {class: 'story-title'}),
        state: h('span', {class: 'story-state'}),
        priority: h('span', {class: 'tag'}),
        complexity: h('span', {class: 'tag'}),
      };
      const link = h('a', {class: 'story-card', href: this.routes.story(story.id)},
        h('span', {class: 'story-head'}, parts.id, parts.state),
        parts.title,
        h('span', {class: 'story-tags'}, parts.priority, parts.complexity));
      card = {item: h('li', {dataset: {storyId: story.id}}, link), link, parts};
      this.cards.set(story.id, card);
    }
    const {item, link, parts} = card;
    item.dataset.state = state;
    link.className = `story-card state-${state}`;
    parts.id.textContent = story.id;
    parts.title.textContent = story.title || '(untitled)';
    parts.state.textContent = STATE_LABELS[state];
    parts.priority.textContent = `Priority ${story.priority ?? '—'}`;
    parts.complexity.textContent = complexityLabel(story);
    link.setAttribute('aria-label', `${story.id}: ${story.title || 'untitled'} — ${STATE_LABELS[state]}, priority ${story.priority ?? 'none'}, ${complexityLabel(story)}`);
    return item;
  }

  /** What each story cost in the current run (from budget.js storyCosts). */
  setCosts(costs) {
    this.costs = costs;
    if (this.dialog.open && this.openId) {
      const story = this.byId.get(this.openId);
      if (story) this.fillDialog(story);
    }
  }

  costText(id) {
    const entry = this.costs ? this.costs.get(id) : null;
    if (!entry) return 'No iteration of the current run worked on this story.';
    return `${money(entry.cost)} over ${plural(entry.iterations, 'iteration')} of the current run`
      + (entry.succeeded ? '.' : ', none successful yet.');
  }

  /** Open the detail of a story (from the #/stories/<id> route). */
  open(id) {
    const story = this.byId.get(id);
    if (!story) return false;
    this.openId = id;
    this.fillDialog(story);
    if (!this.dialog.open) this.dialog.showModal();
    return true;
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** Whether the address is this view's story dialog's (#/stories/<id>, below #/p/<id> on a fleet). */
  isOpenRoute() {
    return (this.routes.local(window.location.hash) || '').startsWith('#/stories/');
  }

  fillDialog(story) {
    const state = storyState(story, this.byId, this.status);
    const neededBy = this.stories.filter((other) => (other.dependencies || []).includes(story.id));
    const linkTo = (id) => {
      const other = this.byId.get(id);
      const otherState = other ? storyState(other, this.byId, this.status) : null;
      return h('li', {},
        h('a', {href: this.routes.story(id)}, id),
        other ? ` ${other.title} ` : ' (not in prd.json) ',
        otherState ? h('span', {class: `pill state-${otherState}`}, STATE_LABELS[otherState]) : null);
    };
    const deps = story.dependencies || [];
    const criteria = story.acceptanceCriteria || [];
    const commits = story.commits || [];
    const commitItem = (shortSha) => {
      const known = this.commitOf(shortSha);
      return h('li', {class: 'commit-row'},
        h('a', {href: this.routes.commit(known ? known.sha : shortSha)}, h('code', {class: 'sha'}, shortSha),
          known ? ` ${known.subject}` : ''));
    };
    const article = h('article', {class: 'story-detail'},
      h('header', {},
        h('h2', {id: 'story-dialog-title'}, h('span', {class: 'story-id'}, story.id), ' ', story.title || '(untitled)'),
        h('form', {method: 'dialog'}, h('button', {class: 'close', 'aria-label': 'Close'}, '✕'))),
      h('p', {class: 'story-meta'},
        h('span', {class: `pill state-${state}`}, STATE_LABELS[state]), ' ',
        h('span', {class: 'tag'}, `Priority ${story.priority ?? '—'}`), ' ',
        h('span', {class: 'tag'}, complexityLabel(story))),
      h('h3', {}, 'Description'),
      h('p', {class: 'story-description'}, story.description || 'No description.'),
      h('h3', {}, 'Acceptance criteria'),
      criteria.length ? h('ul', {class: 'criteria'}, criteria.map((c) => h('li', {}, c))) : h('p', {}, 'None listed.'),
      h('h3', {}, 'Cost'),
      h('p', {class: 'story-cost'}, this.costText(story.id)),
      h('h3', {}, 'Commits'),
      commits.length ? h('ul', {class: 'story-commits'}, commits.map(commitItem)) : h('p', {}, 'No commit names this story.'),
      h('h3', {}, 'Notes'),
      h('p', {class: 'story-notes'}, story.notes || 'No notes yet.'),
      h('h3', {}, 'Depends on'),
      deps.length ? h('ul', {class: 'deps'}, deps.map(linkTo)) : h('p', {}, 'No dependencies.'),
      h('h3', {}, 'Needed by'),
      neededBy.length ? h('ul', {class: 'deps'}, neededBy.map((other) => linkTo(other.id))) : h('p', {}, 'No story depends on this one.'));
    // Every status update, plan change or commit renders the stories again: only
    // what changed in the dialog is changed. Rebuilt, it lost the reader's focus,
    // selection and a click in progress (pressed on the old link, released on the
    // new one: no click, so the commit's dialog never opened).
    sync(this.dialog, article);
    this.dialog.setAttribute('aria-labelledby', 'story-dialog-title');
  }
}
