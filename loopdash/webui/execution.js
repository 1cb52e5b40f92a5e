// The execution panel: state, current story, progress, elapsed time (ticking
// every second between events while the loop runs), cost and ETA.
// The state line is an aria-live region; the ticking clock is not, so screen
// readers hear changes, not seconds.

import {h, money, duration, localTime, definitions} from './dom.js';

/** running | finished | idle, from an ExecutionStatus. */
export function runState(status) {
  if (!status) return 'idle';
  if (status.is_running) return 'running';
  if (status.total_stories > 0 && status.completed_stories === status.total_stories) return 'finished';
  return 'idle';
}

const STATE_TEXT = {
  running: ['Running', 'the loop is working'],
  finished: ['Finished', 'every story passes'],
  idle: ['Idle', 'the loop is not running'],
};

export class ExecutionView {
  constructor(container, clock = () => performance.now()) {
    this.clock = clock;
    this.status = null;
    this.receivedAt = 0;
    this.titles = new Map();
    this.stateLine = h('p', {id: 'run-state', class: 'run-state', role: 'status', 'aria-live': 'polite'});
    this.story = h('p', {id: 'current-story', class: 'current-story'});
    this.progress = h('progress', {id: 'progress', max: 1, value: 0, 'aria-labelledby': 'progress-label'});
    this.progressLabel = h('span', {id: 'progress-label', class: 'progress-label'});
    this.elapsed = h('span', {id: 'elapsed'});
    this.storyElapsed = h('span', {id: 'story-elapsed'});
    this.cost = h('span', {id: 'cost'});
    this.eta = h('span', {id: 'eta'});
    this.updated = h('span', {id: 'last-update'});
    container.replaceChildren(
      this.stateLine,
      this.story,
      h('div', {class: 'progress-row'}, this.progress, this.progressLabel),
      definitions([
        ['Elapsed', this.elapsed],
        ['On this story', this.storyElapsed],
        ['Cost so far', this.cost],
        ['Estimated remaining', this.eta],
        ['Last activity', this.updated],
      ]),
    );
    setInterval(() => this.tick(), 1000);
  }

  /** Story titles by id, so the current story shows its title even when the status lacks it. */
  setStories(stories) {
    this.titles = new Map(stories.map((story) => [story.id, story.title]));
    this.render();
  }

  setStatus(status) {
    this.status = status;
    this.receivedAt = this.clock();
    this.render();
  }

  render() {
    const status = this.status;
    if (!status) return;
    const state = runState(status);
    const runText = status.run_id ? ` · run ${status.run_id}` : ' · no runs yet';
    const [word, meaning] = STATE_TEXT[state];
    const key = `${state}${runText}`;
    if (this.stateKey !== key) { // rewrite the live region only when its text changes
      this.stateKey = key;
      this.stateLine.replaceChildren(h('span', {class: `badge state-${state}`}, word), ` ${meaning}`,
        h('span', {class: 'muted'}, runText));
    }
    this.stateLine.dataset.state = state;
    const current = status.current_story;
    if (current) {
      const title = current.title || this.titles.get(current.id) || '';
      const label = state === 'running' ? 'Working on' : 'Last story';
      this.story.replaceChildren(`${label} `,
        h('a', {href: `#/stories/${encodeURIComponent(current.id)}`, class: 'story-id'}, current.id), title ? ` ${title}` : '',
        state === 'running' ? '' : h('span', {class: 'muted'}, ` (${current.status})`));
    } else {
      this.story.replaceChildren(h('span', {class: 'muted'}, 'No current story.'));
    }
    const total = status.total_stories || 0;
    this.progress.max = Math.max(1, total);
    this.progress.value = status.completed_stories || 0;
    this.progressLabel.textContent = `${status.completed_stories} of ${total} stories complete (${Number(status.progress_pct).toFixed(1)}%)`;
    this.cost.textContent = money(status.cost_so_far);
    this.eta.textContent = status.estimated_remaining === null || status.estimated_remaining === undefined
      ? (state === 'running' ? 'not known yet' : '—')
      : duration(status.estimated_remaining);
    this.updated.textContent = localTime(status.last_update);
    this.tick();
  }

  /** Elapsed counters move on between events while the loop runs. */
  tick() {
    const status = this.status;
    if (!status) return;
    const running = runState(status) === 'running';
    const since = running ? (this.clock() - this.receivedAt) / 1000 : 0;
    this.elapsed.textContent = duration((status.elapsed_time || 0) + since);
    const current = status.current_story;
    this.storyElapsed.textContent = current && current.elapsed_ms !== undefined
      ? duration(current.elapsed_ms / 1000 + since)
      : '—';
  }
}
