// History: the runs table (newest first, paged) and one run's detail view at
// #/runs/<id>, with its iteration table, cache and parallel stats and charts.

import {h, money, integer, duration, runStart, definitions, localTime, sync} from './dom.js';
import {ChartPanel} from './charts.js';
import {Routes} from './routes.js';

const PAGE = 10;

function runLink(runId, routes) {
  return h('a', {href: routes.run(runId)}, runId);
}

/** A run's state as a pill: running, stalled, stopped, finished (docs/liveness.md). */
export const RUN_STATE_LABELS = {
  running: 'Running', stalled: 'Stalled', stopped: 'Stopped', finished: 'Finished', idle: 'Idle',
};

function stateCell(state) {
  if (!state) return h('td', {class: 'col-state muted'}, '—'); // a daemon from before states
  return h('td', {class: 'col-state'},
    h('span', {class: `badge state-${state}`, title: state === 'stopped' ? 'ended without finishing' : ''},
      RUN_STATE_LABELS[state] || state));
}

function outcomeCell(success, failure) {
  return h('td', {class: 'num'},
    h('span', {class: 'ok-text'}, `${integer(success)} ✓`), ' ',
    h('span', {class: failure ? 'bad-text' : 'muted'}, `${integer(failure)} ✕`));
}

export class HistoryView {
  constructor({api, guard, body, counter, newer, older, routes = new Routes()}) {
    this.routes = routes;
    this.api = api;
    this.body = body;
    this.counter = counter;
    this.newer = newer;
    this.older = older;
    this.offset = 0;
    this.total = 0;
    this.signature = '';
    this.eventId = null; // the stream event the shown page is as new as
    newer.addEventListener('click', () => guard(this.page(Math.max(0, this.offset - PAGE))));
    older.addEventListener('click', () => guard(this.page(this.offset + PAGE)));
  }

  async page(offset) {
    this.offset = offset;
    await this.refresh();
  }

  async refresh() {
    const {body: answer, eventId} = await this.api.fetchWithId('api/history', {limit: PAGE, offset: this.offset});
    this.eventId = eventId;
    const signature = JSON.stringify(answer);
    if (signature === this.signature) return;
    this.signature = signature;
    this.total = answer.total;
    sync(this.body, ...answer.runs.map((run) => h('tr', {dataset: {runId: run.run_id, key: run.run_id}},
      h('th', {scope: 'row'}, runLink(run.run_id, this.routes)),
      h('td', {class: 'col-started'}, runStart(run.timestamp || run.run_id)),
      h('td', {class: 'num'}, integer(run.total_iterations)),
      outcomeCell(run.success_count, run.failure_count),
      h('td', {class: 'num'}, money(run.total_cost)),
      h('td', {class: 'num'}, duration(run.elapsed_time_s)),
      stateCell(run.state))));
    if (answer.runs.length === 0) {
      sync(this.body, h('tr', {}, h('td', {colspan: 7, class: 'empty'}, 'No runs yet: .claude-loop/runs/ is empty.')));
    }
    const first = answer.runs.length ? this.offset + 1 : 0;
    this.counter.textContent = `Runs ${first}–${this.offset + answer.runs.length} of ${this.total}, newest first.`;
    this.newer.disabled = this.offset === 0;
    this.older.disabled = this.offset + PAGE >= this.total;
  }
}

export class RunView {
  constructor({api, root, heading, routes = new Routes()}) {
    this.routes = routes;
    this.api = api;
    this.root = root;
    this.heading = heading;
    this.runId = null;
  }

  async show(runId) {
    this.runId = runId;
    this.heading.textContent = `Run ${runId}`;
    this.root.replaceChildren(h('p', {class: 'muted'}, 'Loading…'));
    let detail;
    try {
      detail = await this.api.get(`api/runs/${encodeURIComponent(runId)}`);
    } catch (error) {
      if (this.runId !== runId) return;
      if (error.isAuth) throw error;
      this.root.replaceChildren(h('p', {class: 'error', role: 'alert'},
        error.status === 404 ? `There is no run ${runId} in .claude-loop/runs/.` : `Could not load the run: ${error.message}`));
      return;
    }
    if (this.runId !== runId) return;
    this.render(detail);
  }

  /** Reload the shown run (a live event touched it). */
  async reload(runId) {
    if (this.runId === runId) await this.show(runId);
  }

  render(detail) {
    const summary = detail.summary || {};
    const metrics = detail.metrics || {};
    const iterations = metrics.iterations || [];
    const cache = metrics.cache;
    const parallel = metrics.parallel;
    const charts = h('div', {class: 'charts'});
    this.root.replaceChildren(
      h('section', {class: 'card', 'aria-labelledby': 'run-summary-title'},
        h('h3', {id: 'run-summary-title'}, 'Summary'),
        definitions([
          ['State', detail.state ? RUN_STATE_LABELS[detail.state] || detail.state : '—'],
          ['Started', runStart(detail.timestamp || detail.run_id)],
          ['Iterations', integer(summary.total_iterations)],
          ['Succeeded', integer(summary.success_count)],
          ['Failed', integer(summary.failure_count)],
          ['Cost', money(summary.total_cost)],
          ['Duration', duration(summary.elapsed_time_s)],
          ['Last update', localTime(metrics.last_update)],
        ])),
      h('section', {class: 'card', 'aria-labelledby': 'run-charts-title'},
        h('h3', {id: 'run-charts-title'}, 'Cost and tokens'), charts),
      h('section', {class: 'card', 'aria-labelledby': 'run-iterations-title'},
        h('h3', {id: 'run-iterations-title'}, 'Iterations'),
        iterationTable(iterations, this.routes)),
      h('div', {class: 'split'},
        h('section', {class: 'card', 'aria-labelledby': 'run-cache-title'},
          h('h3', {id: 'run-cache-title'}, 'Prompt cache'),
          cache ? definitions([
            ['Hits', integer(cache.hits)],
            ['Misses', integer(cache.misses)],
            ['Hit rate', cache.hit_rate === undefined ? '—' : `${Number(cache.hit_rate).toFixed(1)}%`],
            ['Tokens saved (est.)', integer(cache.saved_tokens_estimate)],
          ]) : h('p', {class: 'muted'}, 'This run recorded no cache statistics.')),
        h('section', {class: 'card', 'aria-labelledby': 'run-parallel-title'},
          h('h3', {id: 'run-parallel-title'}, 'Parallel execution'),
          parallel ? definitions([
            ['Enabled', parallel.enabled ? 'yes' : 'no'],
            ['Batches', integer(parallel.batches)],
            ['Workers used', integer(parallel.workers_used)],
            ['Max concurrent', integer(parallel.max_concurrent)],
            ['Time saved', duration((parallel.time_saved_ms || 0) / 1000)],
            ['Speedup', parallel.speedup_factor === undefined ? '—' : `×${parallel.speedup_factor}`],
          ]) : h('p', {class: 'muted'}, 'This run recorded no parallel statistics.')),
        metrics.model_usage ? h('section', {class: 'card', 'aria-labelledby': 'run-models-title'},
          h('h3', {id: 'run-models-title'}, 'Models'),
          definitions(Object.entries(metrics.model_usage).map(([model, n]) => [model, integer(n)]))) : null));
    new ChartPanel(charts).update(iterations);
  }
}

export function iterationTable(iterations, routes = new Routes()) {
  if (iterations.length === 0) return h('p', {class: 'muted'}, 'No iterations recorded.');
  return h('div', {class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Iterations'},
    h('table', {class: 'iterations'},
      h('thead', {}, h('tr', {},
        ['#', 'Story', 'Result', 'Duration', 'Tokens in', 'Tokens out', 'Cost', 'Model', 'Agents']
          .map((label) => h('th', {scope: 'col'}, label)))),
      h('tbody', {}, iterations.map((it, i) => h('tr', {},
        h('td', {class: 'num'}, String(it.iteration ?? i + 1)),
        h('td', {}, h('a', {href: routes.story(it.story_id || '')}, it.story_id || '?'),
          it.story_title ? ` ${it.story_title}` : ''),
        h('td', {}, h('span', {class: `pill result-${it.status === 'success' ? 'ok' : it.status === 'failure' ? 'bad' : 'other'}`},
          it.status === 'success' ? '✓ success' : it.status === 'failure' ? '✕ failure' : String(it.status || 'unknown'))),
        h('td', {class: 'num'}, duration((it.elapsed_ms || 0) / 1000)),
        h('td', {class: 'num'}, integer(it.tokens_in)),
        h('td', {class: 'num'}, integer(it.tokens_out)),
        h('td', {class: 'num'}, money(it.cost)),
        h('td', {}, it.model || '—'),
        h('td', {}, (it.agents_used || []).join(', ') || '—'))))));
}
