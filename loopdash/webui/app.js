// The page's entry point: sign-in, the views, the live connection and the
// router (#/, #/stories/<id>, #/runs/<id>). On a multi-project daemon, #/ is the
// overview of every loop and each project's view lives below #/p/<id>/.

import {byId, money, integer, plural} from './dom.js';
import {Api, isNewer, isOlder, oldestId} from './api.js';
import * as auth from './auth.js';
import {liveConnection} from './live.js';
import {Theme} from './theme.js';
import {ExecutionView} from './execution.js';
import {StoriesView} from './stories.js';
import {LogsView} from './logs.js';
import {ChartPanel} from './charts.js';
import {HistoryView, RunView} from './history.js';
import {Notifier} from './notify.js';
import {BudgetView, CostByStory, storyCosts} from './budget.js';
import {CommitsView, storiesIn} from './commits.js';
import {Routes, projectOf} from './routes.js';
import {OverviewView, isFleet} from './overview.js';

const BANNER = {
  connecting: ['Connecting…', () => ''],
  // The connection only: whether the loop itself is working is the state badge's to say.
  live: ['Live', () => 'connected to the daemon; changes show as soon as it sees them'],
  reconnecting: ['Reconnecting', (n) => (n > 0 ? `in ${n} s` : 'now…')],
  offline: ['Offline', (n) => `the daemon is not answering; retrying ${n > 0 ? `in ${n} s` : 'now…'}`],
  polling: ['Polling', (n) => `this daemon has no live stream; refreshing every ${n} s`],
  denied: ['Not signed in', () => 'the token was refused'],
  signedout: ['Not signed in', () => ''],
};

function showBanner(state, secondsLeft) {
  const [word, detail] = BANNER[state];
  byId('connection').dataset.state = state;
  const stateText = byId('connection-state');
  if (stateText.textContent !== word) stateText.textContent = word;
  byId('connection-detail').textContent = detail(secondsLeft);
  byId('retry-now').hidden = !(state === 'reconnecting' || state === 'offline');
}

function notice(message) {
  const element = byId('notice');
  element.textContent = message || '';
  element.hidden = !message;
}

function deniedMessage(error) {
  if (error.status === 403) {
    return 'That token is wrong: the daemon refused it (403 Forbidden). Copy it again from '
      + '.claude-loop/dashboard/auth_token.txt; generating a new token replaces the old one.';
  }
  return `The daemon asks for a token (${error.status}): ${error.message}.`;
}

/** Run a promise; a refused token signs out (ending `live`), other failures show a notice. */
async function guarded(promise, live) {
  try {
    await promise;
    notice('');
  } catch (error) {
    if (error.isAuth) signOut(live, error);
    else notice(`Could not refresh: ${error.message}. The page will try again.`);
  }
}

/** The token was refused: stop the live stream, forget the token, ask for another. */
function signOut(live, error) {
  live.stop();
  auth.forgetToken();
  showBanner('denied');
  showSignIn(deniedMessage(error));
}

/**
 * The signed-in page of one project: every view, kept current by the live connection.
 *
 * On a single-project daemon it owns the connection. Below the overview of a
 * multi-project daemon (`routes` bound to a project) the Fleet owns the one
 * stream and hands this view its project's events; `connection` is then the
 * Fleet's, which this view may stop or retry but never starts.
 */
class Dashboard {
  constructor(api, {routes = new Routes(), connection = null, name = null, only = null} = {}) {
    this.api = api;
    /** On a scanning daemon that serves one project so far: its id (its events only). */
    this.only = only;
    this.routes = routes;
    this.name = name;
    this.shared = connection !== null;
    this.queue = null; // events held back while a full reload is in flight
    // The stream event each view's data is as new as (X-Loopdash-Event-Id): a view
    // applies only later events, so an older event never overwrites newer data.
    this.seen = {status: null, stories: null, metrics: null};
    this.execution = new ExecutionView(byId('execution-body'), undefined, routes);
    this.commits = new CommitsView({
      api, routes, list: byId('commit-list'), summary: byId('commits-summary'), dialog: byId('commit-dialog'),
    });
    this.stories = new StoriesView({
      grid: byId('story-grid'), summary: byId('stories-summary'), dialog: byId('story-dialog'),
      commitOf: (shortSha) => this.commits.find(shortSha), routes,
    });
    this.charts = new ChartPanel(byId('charts'));
    this.budget = new BudgetView(byId('budget'));
    this.costs = new CostByStory(byId('cost-by-story'), routes);
    this.notifier = new Notifier({
      api, button: byId('notify-button'), dialog: byId('notify-dialog'), toasts: byId('toasts'),
      onSettings: (settings) => this.budget.setBudget(settings.budget_usd),
    });
    const guard = (promise) => this.guard(promise);
    this.logs = new LogsView({
      api, guard, routes, scroller: byId('log-scroll'), list: byId('log-list'), olderButton: byId('log-older'),
      followBox: byId('log-follow'), filterBox: byId('log-filter'), counter: byId('log-counter'),
      commitsFor: (entry) => this.commitsOfEntry(entry),
    });
    this.commits.onChange(() => {
      this.logs.refreshCommits();
      this.stories.render();
    });
    this.history = new HistoryView({
      api, guard, routes, body: byId('runs-body'), counter: byId('runs-counter'), newer: byId('runs-newer'), older: byId('runs-older'),
    });
    this.runView = new RunView({api, routes, root: byId('run-body'), heading: byId('run-title')});
    byId('run-back').setAttribute('href', routes.home());
    this.live = connection || liveConnection(api, {
      onMessage: (event, context) => this.received(event, context),
      onState: showBanner,
      onPoll: () => this.guard(this.poll()),
      onDenied: (error) => this.denied(error),
      // Another tab's stream is at `id`: if that is past what this tab fetched, fetch again.
      onLeaderAt: (id) => {
        if (!this.leaderChecked && isNewer(id, this.oldestSeen())) {
          this.leaderChecked = true;
          this.resync();
        }
      },
    });
    this.timers = {};
    if (!this.shared) byId('retry-now').addEventListener('click', () => this.live.retryNow());
    window.addEventListener('hashchange', () => this.route());
  }

  async start(status) {
    byId('sign-out').hidden = false;
    byId('signin').hidden = true;
    this.setStatus(status);
    this.route(); // show the view first: the log can only scroll to its end once visible
    // The Fleet's stream is already open: its events wait until the answers are in,
    // then each view takes only those newer than its answer.
    if (this.shared) this.queue = [];
    await this.guard(Promise.all([this.loadAll(), this.notifier.load()]));
    if (this.shared) {
      this.loadedOnce = true;
      this.flush();
    } else {
      // Resume the stream from the oldest snapshot: every change made after any of
      // them is replayed, so nothing falls between the fetches and the stream.
      this.live.start(this.oldestSeen());
    }
    const story = /^#\/stories\/([^/]+)$/.exec(this.routes.local(window.location.hash) || '');
    if (story) this.stories.open(decodeURIComponent(story[1]));
  }

  /** The tab's title for a view of this project. */
  title(what = null) {
    return [what, this.name, 'loopdash'].filter(Boolean).join(' · ');
  }

  /** The commits of the stories a log entry names (newest first, each once). */
  commitsOfEntry(entry) {
    const ids = storiesIn((entry.lines || []).join('\n'), [...this.stories.byId.keys()]);
    const seen = new Set();
    const found = [];
    for (const id of ids) {
      for (const commit of this.commits.forStory(id)) {
        if (!seen.has(commit.sha)) {
          seen.add(commit.sha);
          found.push(commit);
        }
      }
    }
    return found;
  }

  stop() {
    this.live.stop();
  }

  guard(promise) {
    return guarded(promise, this.live);
  }

  denied(error) {
    signOut(this.live, error);
  }

  async loadAll() {
    await Promise.all([
      this.loadStatus(),
      this.loadStories(),
      this.loadMetrics(),
      this.logs.loadLatest(),
      this.history.refresh(),
      this.commits.load(),
    ]);
  }

  oldestSeen() {
    return oldestId([this.seen.status, this.seen.stories, this.seen.metrics, this.logs.eventId, this.history.eventId]);
  }

  /** Take a fetched answer for `view` unless the view already shows something newer. */
  fresh(view, eventId) {
    if (isOlder(eventId, this.seen[view])) return false;
    this.seen[view] = eventId;
    return true;
  }

  /** Apply an event to `view` only if it is newer than what the view shows. */
  accept(view, id) {
    if (!isNewer(id, this.seen[view])) return false;
    this.seen[view] = id;
    return true;
  }

  async loadStatus() {
    const {body, eventId} = await this.api.fetchWithId('api/status');
    if (this.fresh('status', eventId)) this.setStatus(body);
  }

  async loadStories() {
    const {body, eventId} = await this.api.fetchWithId('api/stories');
    if (!this.fresh('stories', eventId)) return;
    this.stories.setStories(body.stories);
    this.execution.setStories(body.stories);
  }

  async loadMetrics() {
    let metrics = null;
    let eventId = null;
    try {
      ({body: metrics, eventId} = await this.api.fetchWithId('api/metrics'));
    } catch (error) {
      if (error.status !== 404) throw error; // 404: no run yet
      eventId = error.eventId || null;
    }
    if (!this.fresh('metrics', eventId)) return;
    const signature = JSON.stringify(metrics);
    if (signature === this.metricsSignature) return;
    this.metricsSignature = signature;
    this.metrics = metrics;
    byId('charts-run').textContent = metrics
      ? `Current run ${metrics.run_id}: ${plural(metrics.total_iterations, 'iteration')}, `
        + `${integer(metrics.success_count)} succeeded, ${integer(metrics.failure_count)} failed, ${money(metrics.total_cost)} in all.`
      : 'No run has recorded metrics yet.';
    this.charts.update(metrics ? metrics.iterations : []);
    const iterations = metrics ? metrics.iterations : [];
    this.costs.update(iterations, new Map(this.stories.stories.map((story) => [story.id, story.title])));
    this.stories.setCosts(storyCosts(iterations));
  }

  /** Several events in a row ask for the same data once. */
  soon(name, load) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(() => this.guard(load()), 150);
  }

  /** A run changed: its metrics, its history row and (when shown) its detail view. */
  runChanged(runId) {
    this.soon('metrics', () => this.loadMetrics());
    this.soon('history', () => this.history.refresh());
    if (this.runView.runId === runId) this.soon('run', () => this.runView.reload(runId));
  }

  setStatus(status) {
    this.budget.setStatus(status);
    this.execution.setStatus(status);
    this.stories.setStatus(status);
    this.commits.setWorkingTree(status.working_tree);
  }

  received(event, context) {
    if (!this.shared && (event.type === 'project_added' || event.type === 'project_removed')) {
      // A scanning daemon's second loop appeared, or its only one went: the page
      // comes back as the overview, of all of them or of none yet.
      window.location.reload();
      return;
    }
    if (this.only && event.project && event.project !== this.only) return;
    if (this.queue) this.queue.push([event, context]);
    else this.apply(event, context);
  }

  flush() {
    const queued = this.queue || [];
    this.queue = null;
    for (const [event, context] of queued) this.apply(event, context);
  }

  /** After a gap in the event ids (a daemon restart, a long absence): reload everything. */
  async resync() {
    if (this.queue) return;
    this.queue = [];
    await this.guard(this.loadAll());
    this.flush();
  }

  apply(event, {resumed, id}) {
    const data = event.data;
    switch (event.type) {
      case 'connected':
        if (!resumed && this.loadedOnce) this.resync();
        this.loadedOnce = true;
        break;
      case 'status_update':
        if (event.gap) {
          // Events were lost: this status is the newest truth; everything else is fetched again.
          this.seen.status = id;
          this.setStatus(data);
          this.resync();
        } else if (this.accept('status', id)) {
          this.setStatus(data);
        }
        break;
      case 'story_updated':
        if (!this.accept('stories', id)) break;
        this.stories.upsert(data);
        this.execution.setStories(this.stories.stories);
        break;
      case 'iteration_added':
        if (isNewer(id, this.seen.metrics)) this.runChanged(data.run_id);
        break;
      case 'log_appended':
        if (this.logs.accept(id)) this.guard(this.logs.appended(data));
        break;
      case 'log_reset':
        // progress.txt was rewritten, truncated or replaced: what is shown of it is void.
        if (this.logs.accept(id)) this.guard(this.logs.loadLatest());
        break;
      case 'run_started':
        // A new run may truncate or replace progress.txt: log indexes start again.
        this.soon('logs', () => this.logs.loadLatest());
        this.runChanged(data.run_id);
        break;
      case 'run_finished':
      case 'run_stalled':
      case 'run_resumed':
      case 'run_stopped':
        // The status_update that follows says it on the execution card; history shows the state.
        this.runChanged(data.run_id);
        break;
      case 'notification':
        this.notifier.received(data);
        break;
      case 'commit_added':
        this.commits.added(data);
        for (const id of data.story_ids) {
          const story = this.stories.byId.get(id);
          if (story && !(story.commits || []).includes(data.short_sha)) {
            this.stories.upsert({...story, commits: [data.short_sha, ...(story.commits || [])]});
          }
        }
        break;
      default:
        break; // a newer daemon's event type: nothing to show
    }
  }

  /** Polling fallback for a daemon without /api/stream. */
  async poll() {
    await Promise.all([
      this.loadStatus(),
      this.loadStories(),
      this.loadMetrics(),
      this.logs.loadNewer(),
      this.history.refresh(),
      this.commits.load(),
    ]);
  }

  route() {
    const hash = this.routes.local(window.location.hash);
    if (hash === null) {
      // The overview or another project's address: the Fleet shows that; this view lets go.
      this.stories.close();
      this.commits.close();
      this.runView.runId = null;
      return;
    }
    const run = /^#\/runs\/([^/]+)$/.exec(hash);
    const story = /^#\/stories\/([^/]+)$/.exec(hash);
    const commit = /^#\/commits\/([0-9a-f]{4,40})$/.exec(hash);
    const showRun = Boolean(run);
    byId('dashboard-view').hidden = showRun;
    byId('run-view').hidden = !showRun;
    if (run) {
      const runId = decodeURIComponent(run[1]);
      this.stories.close();
      document.title = this.title(`Run ${runId}`);
      this.guard(this.runView.show(runId));
      byId('run-title').focus();
      return;
    }
    document.title = this.title();
    this.runView.runId = null;
    if (commit) {
      this.stories.close();
      this.guard(this.commits.open(commit[1]));
      return;
    }
    this.commits.close();
    if (story) this.stories.open(decodeURIComponent(story[1]));
    else if (hash === '' || hash === '#/') this.stories.close();
  }
}

/**
 * A multi-project daemon's page: the overview at #/, one project's Dashboard at
 * #/p/<id>/..., and the one combined stream for both.
 *
 * One stream, filtered here on each event's `project`, rather than a project's
 * own /api/projects/<id>/stream: the overview needs the combined stream anyway
 * (project_added/updated/removed), the tabs of a browser share one stream
 * whatever each of them shows (live.js: at most six connections to a server),
 * and going back and forth between the overview and a project opens nothing.
 * A tab shows one project's Dashboard for its life: opening another project
 * reloads the page, so no view ever holds a second project's data.
 */
class Fleet {
  constructor(api) {
    this.api = api;
    this.dashboard = null;
    this.opening = null;
    /** The event id the overview's rows are as new as: older answers and events are dropped. */
    this.seen = null;
    this.overview = new OverviewView({list: byId('project-list'), summary: byId('projects-summary'), filter: byId('project-filter')});
    this.overview.onTitle = (title) => {
      if (byId('overview-view').hidden === false) document.title = title;
    };
    this.live = liveConnection(api, {
      onMessage: (event, context) => this.received(event, context),
      onState: showBanner,
      onPoll: () => this.guard(this.poll()),
      onDenied: (error) => this.denied(error),
      onLeaderAt: (id) => {
        if (!this.leaderChecked && isNewer(id, this.seen)) {
          this.leaderChecked = true;
          this.resync();
        }
      },
    });
    // What a project's Dashboard may do with the stream: stop it (a refused token), retry it.
    this.connection = {start: () => {}, stop: () => this.live.stop(), retryNow: () => this.live.retryNow()};
    byId('retry-now').addEventListener('click', () => this.live.retryNow());
    window.addEventListener('hashchange', () => this.route());
  }

  start({body, eventId}) {
    byId('sign-out').hidden = false;
    byId('signin').hidden = true;
    this.seen = eventId;
    this.overview.setRows(body.projects);
    this.route();
    // Resume after the list: every project_* event since it is replayed.
    this.live.start(eventId);
  }

  guard(promise) {
    return guarded(promise, this.live);
  }

  denied(error) {
    signOut(this.live, error);
  }

  async loadList() {
    const {body, eventId} = await this.api.fetchWithId('api/projects');
    if (isOlder(eventId, this.seen)) return;
    this.seen = eventId;
    this.overview.setRows(body.projects);
  }

  /** After a gap in the events: the rows again, and the open project's views. */
  resync() {
    this.guard(this.loadList());
    if (this.dashboard) this.dashboard.resync();
  }

  async poll() {
    await this.loadList();
    if (this.dashboard) await this.dashboard.poll();
  }

  /** Take a project_* event unless the rows shown are newer. */
  accept(id) {
    if (!isNewer(id, this.seen)) return false;
    this.seen = id;
    return true;
  }

  received(event, context) {
    const {id} = context;
    switch (event.type) {
      case 'project_added':
      case 'project_updated':
        if (this.accept(id)) this.overview.upsert(event.data);
        return;
      case 'project_removed':
        if (this.accept(id)) this.overview.remove(event.data.id);
        if (this.dashboard && event.data.id === this.dashboard.routes.projectId) {
          notice(`The loop ${event.data.id} is no longer served: its folder is gone or holds no loop now.`);
        }
        return;
      case 'connected':
        if (!context.resumed && this.loadedOnce) this.guard(this.loadList());
        this.loadedOnce = true;
        break;
      default:
        // Events were lost (a long absence, a restarted daemon): rows may be missing or stale.
        if (event.gap) this.guard(this.loadList());
        break;
    }
    if (!this.dashboard) return;
    const mine = !event.project || event.project === this.dashboard.routes.projectId;
    if (mine) this.dashboard.received(event, context);
    // Events were lost for the whole daemon, the open project's among them.
    else if (event.gap) this.dashboard.resync();
  }

  route() {
    const id = projectOf(window.location.hash);
    const overview = id === null;
    byId('overview-view').hidden = !overview;
    byId('project-crumbs').hidden = overview;
    if (overview) {
      byId('dashboard-view').hidden = true;
      byId('run-view').hidden = true;
      document.title = this.overview.title();
      return;
    }
    if (this.dashboard) {
      // Another project: a fresh page, so no view keeps the first one's data.
      if (this.dashboard.routes.projectId !== id) window.location.reload();
      return; // the same one: its own route() shows it
    }
    this.guard(this.open(id));
  }

  async open(id) {
    if (this.opening === id) return;
    this.opening = id;
    const row = this.overview.get(id);
    byId('project-name').textContent = row ? row.name : id;
    const api = this.api.forProject(id);
    let status;
    try {
      status = await api.get('api/status');
    } catch (error) {
      this.opening = null;
      if (error.isAuth) throw error;
      notice(`Could not open the loop ${id}: ${error.message}.`);
      window.history.replaceState(null, '', '#/');
      this.route();
      return;
    }
    this.opening = null;
    if (projectOf(window.location.hash) !== id) return; // gone elsewhere meanwhile
    this.dashboard = new Dashboard(api, {routes: new Routes(id), connection: this.connection, name: row ? row.name : id});
    await this.dashboard.start(status);
  }
}

function showSignIn(message) {
  byId('overview-view').hidden = true;
  byId('project-crumbs').hidden = true;
  byId('dashboard-view').hidden = true;
  byId('run-view').hidden = true;
  byId('sign-out').hidden = true;
  byId('signin').hidden = false;
  byId('signin-error').textContent = message || '';
  byId('remember').checked = auth.isRemembered();
  byId('token-input').focus();
}

/** The signed-in page (a Dashboard, or a Fleet on a multi-project daemon), once there is one. */
let dashboard = null;

/**
 * What the daemon serves, asked with `api`'s token: {listed} (its /api/projects
 * answer with its event id) when it serves several projects, else {status, only}
 * for the one project's page. A daemon from before projects answers 404 to the
 * list. Throws the ApiError of a refused token or a daemon that does not answer.
 */
async function probe(api) {
  let listed = null;
  try {
    listed = await api.fetchWithId('api/projects');
  } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
  }
  if (listed && isFleet(listed.body)) return {listed};
  const only = listed && listed.body.total === 1 ? listed.body.projects[0].id : null;
  return {status: await api.get('api/status'), only};
}

async function signIn(token, remember) {
  const api = new Api(token);
  let served;
  try {
    served = await probe(api);
  } catch (error) {
    if (error.isAuth) {
      auth.forgetToken();
      showBanner('denied');
      showSignIn(deniedMessage(error));
    } else {
      showSignIn(`Could not reach the daemon (${error.message}). Is it running?`);
    }
    return;
  }
  auth.keepToken(token, remember);
  if (dashboard) {
    // Signed out by a refused token, now back in: start afresh rather than
    // leave the old views' listeners holding the old token.
    window.location.reload();
    return;
  }
  await start(api, served);
}

/**
 * A token from a link's #token= fragment. It replaces nothing until the daemon
 * accepts it: a hostile page can link here with any token, to sign this tab out
 * or into someone else's daemon, so a refused one never displaces a working
 * token, and a remembered token stays remembered.
 */
async function adoptFragmentToken(candidate) {
  const stored = auth.storedToken();
  if (candidate === stored) {
    if (!dashboard) await signIn(stored, auth.isRemembered());
    return;
  }
  let served;
  try {
    served = await probe(new Api(candidate));
  } catch (error) {
    if (stored) {
      const why = error.isAuth ? `the daemon refused it (${error.status})` : `it could not be checked (${error.message})`;
      if (!dashboard) await signIn(stored, auth.isRemembered());
      notice(`The token in the link was not used: ${why}. You are still signed in with your saved token.`);
      return;
    }
    if (error.isAuth) {
      showBanner('denied');
      showSignIn(deniedMessage(error));
    } else {
      showBanner('signedout');
      showSignIn(`Could not reach the daemon (${error.message}). Is it running?`);
    }
    return;
  }
  auth.keepToken(candidate, auth.isRemembered());
  if (dashboard) {
    window.location.reload(); // every view starts again with the accepted token
    return;
  }
  await start(new Api(candidate), served);
}

async function start(api, {status, only, listed}) {
  byId('token-input').value = '';
  byId('signin-error').textContent = '';
  if (listed) {
    dashboard = new Fleet(api);
    dashboard.start(listed);
    return;
  }
  dashboard = new Dashboard(api, {only});
  await dashboard.start(status);
}

function main() {
  new Theme(byId('theme-toggle'));
  byId('sign-out').addEventListener('click', () => {
    auth.forgetToken();
    window.location.reload();
  });
  byId('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = byId('token-input').value.trim();
    if (!token) {
      byId('signin-error').textContent = 'Paste the token first.';
      return;
    }
    signIn(token, byId('remember').checked);
  });
  // A printed #token= link pasted into an open tab changes only the fragment: no reload.
  window.addEventListener('hashchange', () => {
    const candidate = auth.takeTokenFromFragment();
    if (candidate) adoptFragmentToken(candidate);
  });
  const fromFragment = auth.takeTokenFromFragment();
  if (fromFragment) {
    adoptFragmentToken(fromFragment);
    return;
  }
  const token = auth.storedToken();
  if (!token) {
    showBanner('signedout');
    showSignIn('');
    return;
  }
  signIn(token, auth.isRemembered());
}

main();
