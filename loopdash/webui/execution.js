// The execution panel: state, current story, progress, elapsed time (ticking
// every second between events while the loop may be at work), cost and ETA.
// The state line is an aria-live region; the ticking clock is not, so screen
// readers hear changes, not seconds. The state is the daemon's (docs/liveness.md):
// running, stalled, stopped, finished or idle, said in words with how long.

import {h, money, duration, localTime, definitions, sync} from './dom.js';
import {Routes} from './routes.js';

/** running | stalled | stopped | finished | idle, from an ExecutionStatus. */
export function runState(status) {
  if (!status) return 'idle';
  if (status.state) return status.state;
  // A daemon from before run states: what is_running and the counts allow.
  if (status.is_running) return 'running';
  if (status.total_stories > 0 && status.completed_stories === status.total_stories) return 'finished';
  return 'idle';
}

/** The states in which the loop may still be at work: its clocks tick between events. */
const TICKING = new Set(['running', 'stalled']);

/** A quiet time as people say it: "45 s", "7 min", "2 h", "3 d" (rounded down). */
export function roughly(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min`;
  if (total < 86400) return `${Math.floor(total / 3600)} h`;
  return `${Math.floor(total / 86400)} d`;
}

/** [badge word, the rest of the sentence] for a state and its quiet time. */
function stateText(state, quiet) {
  switch (state) {
    case 'running': return ['Running', ' the loop is working'];
    case 'stalled': return ['Stalled', `: no activity for ${roughly(quiet)}`];
    case 'stopped': return ['Stopped', quiet === null ? ' without finishing' : ` without finishing ${roughly(quiet)} ago`];
    case 'finished': return ['Finished', ' every story passes or the run wrote its summary'];
    default: return ['Idle', ' no run has started yet'];
  }
}

export class ExecutionView {
  constructor(container, clock = () => performance.now(), routes = new Routes()) {
    this.clock = clock;
    this.routes = routes;
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
    this.quiet = h('span', {id: 'quiet-for', class: 'muted'});
    container.replaceChildren(
      this.stateLine,
      this.story,
      h('div', {class: 'progress-row'}, this.progress, this.progressLabel),
      definitions([
        ['Elapsed', this.elapsed],
        ['On this story', this.storyElapsed],
        ['Cost so far', this.cost],
        ['Estimated remaining', this.eta],
        ['Last activity', h('span', {}, this.updated, this.quiet)],
      ]),
    );
    setInterval(() => this.tick(), 1000);
  }

  /** The stories: titles by id, and the counts (one source for the whole page). */
  setStories(stories) {
    this.titles = new Map(stories.map((story) => [story.id, story.title]));
    this.storyCounts = {total: stories.length, completed: stories.filter((s) => s.status === 'completed').length};
    this.render();
  }

  /** Seconds of quiet now: the daemon's figure, moved on by the time since it came. */
  quietNow(since) {
    const status = this.status;
    if (!status || status.quiet_for === null || status.quiet_for === undefined) return null;
    return status.quiet_for + (TICKING.has(runState(status)) || runState(status) === 'stopped' ? since : 0);
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
    this.stateLine.dataset.state = state;
    this.renderState();
    const current = status.current_story;
    if (current) {
      const title = current.title || this.titles.get(current.id) || '';
      const label = TICKING.has(state) ? 'Working on' : 'Last story';
      sync(this.story, `${label} `,
        h('a', {href: this.routes.story(current.id), class: 'story-id'}, current.id), title ? ` ${title}` : '',
        TICKING.has(state) ? '' : h('span', {class: 'muted'}, ` (${current.status})`));
    } else {
      sync(this.story, h('span', {class: 'muted'}, 'No current story.'));
    }
    // The counts come from the stories the page shows, so the card and the
    // Stories panel can never disagree (the status says the same once current).
    const counts = this.storyCounts || {total: status.total_stories || 0, completed: status.completed_stories || 0};
    const total = counts.total;
    const percent = total ? Math.round((counts.completed * 1000) / total) / 10 : 0;
    this.progress.max = Math.max(1, total);
    this.progress.value = counts.completed;
    this.progressLabel.textContent = `${counts.completed} of ${total} stories complete (${percent.toFixed(1)}%)`;
    this.progressLabel.dataset.completed = String(counts.completed);
    this.cost.textContent = money(status.cost_so_far);
    this.eta.textContent = status.estimated_remaining === null || status.estimated_remaining === undefined
      ? (TICKING.has(state) ? 'not known yet' : '—')
      : duration(status.estimated_remaining);
    this.updated.textContent = localTime(status.last_update);
    this.tick();
  }

  /** The badge and its sentence; the live region is rewritten only when its words change. */
  renderState() {
    const status = this.status;
    const state = runState(status);
    const since = (this.clock() - this.receivedAt) / 1000;
    const [word, meaning] = stateText(state, this.quietNow(since));
    const runText = status.run_id ? ` · run ${status.run_id}` : ' · no runs yet';
    const key = `${state}${meaning}${runText}`;
    if (this.stateKey === key) return;
    this.stateKey = key;
    this.stateLine.replaceChildren(h('span', {class: `badge state-${state}`}, word), meaning,
      h('span', {class: 'muted'}, runText));
  }

  /** Elapsed counters move on between events while the loop may be at work; quiet time always. */
  tick() {
    const status = this.status;
    if (!status) return;
    const ticking = TICKING.has(runState(status));
    const since = ticking ? (this.clock() - this.receivedAt) / 1000 : 0;
    const quiet = this.quietNow((this.clock() - this.receivedAt) / 1000);
    this.quiet.textContent = quiet === null || runState(status) === 'idle' ? '' : ` · quiet for ${roughly(quiet)}`;
    this.renderState();
    this.elapsed.textContent = duration((status.elapsed_time || 0) + since);
    const current = status.current_story;
    this.storyElapsed.textContent = current && current.elapsed_ms !== undefined
      ? duration(current.elapsed_ms / 1000 + since)
      : '—';
  }
}
