// The live connection: a one-use stream ticket, then an EventSource.
//
// A ticket is accepted once, so EventSource's own retry (same URL) can never
// succeed: on any error the page closes the source itself, waits (1, 2, 4, 8,
// then 15 s), fetches a new ticket and reconnects, resuming after the last
// event id it saw. The state it reports is what is true right now:
//   connecting | live | reconnecting (with seconds left) | offline (same) |
//   polling (this daemon has no stream: the ticket endpoint answers 404) |
//   denied (the token was refused).

const DELAYS = [1, 2, 4, 8, 15];
/** After this many failed attempts in a row the banner says "offline". */
const OFFLINE_AFTER = 3;
const POLL_SECONDS = 5;

export class LiveConnection {
  constructor(api, {onMessage, onState, onPoll, onDenied}) {
    this.api = api;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onPoll = onPoll;
    this.onDenied = onDenied;
    this.source = null;
    this.lastEventId = null;
    this.failures = 0;
    this.timer = null;
    this.stopped = false;
    this.generation = 0;
    window.addEventListener('online', () => this.retryNow());
    window.addEventListener('offline', () => this.report('offline', this.secondsLeft));
  }

  /** Connect; with `resumeFrom`, the daemon replays every event after that id first. */
  start(resumeFrom = null) {
    this.stopped = false;
    if (resumeFrom) this.lastEventId = resumeFrom;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.generation += 1;
    this.closeSource();
    clearInterval(this.timer);
    this.timer = null;
  }

  retryNow() {
    if (this.stopped || this.state === 'live' || this.state === 'polling') return;
    clearInterval(this.timer);
    this.timer = null;
    this.connect();
  }

  report(state, secondsLeft = null) {
    this.state = state;
    this.secondsLeft = secondsLeft;
    this.onState(state, secondsLeft);
  }

  closeSource() {
    if (this.source) {
      this.source.onmessage = null;
      this.source.onerror = null;
      this.source.close();
      this.source = null;
    }
  }

  async connect() {
    const generation = ++this.generation;
    if (this.failures === 0) this.report('connecting');
    else this.report(this.state === 'offline' ? 'offline' : 'reconnecting', 0);
    let ticket;
    try {
      ticket = (await this.api.post('api/stream/ticket')).ticket;
    } catch (error) {
      if (generation !== this.generation || this.stopped) return;
      if (error.status === 404 || error.status === 405) return this.poll();
      if (error.isAuth) {
        this.report('denied');
        return this.onDenied(error);
      }
      return this.scheduleRetry();
    }
    if (generation !== this.generation || this.stopped) return;
    const params = new URLSearchParams({ticket});
    if (this.lastEventId) params.set('last_event_id', this.lastEventId);
    const source = new EventSource(`api/stream?${params.toString()}`);
    this.source = source;
    const resumed = this.lastEventId !== null;
    source.onmessage = (message) => {
      if (message.lastEventId) this.lastEventId = message.lastEventId;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return; // not one of ours; the contract sends one-line JSON only
      }
      if (event.type === 'connected') {
        this.failures = 0;
        this.report('live');
      }
      this.onMessage(event, {resumed, id: message.lastEventId || null});
    };
    // Any error: the browser would retry with the same, already used ticket.
    source.onerror = () => {
      if (this.source !== source) return;
      this.closeSource();
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.failures += 1;
    let left = DELAYS[Math.min(this.failures - 1, DELAYS.length - 1)];
    const state = () => (this.failures > OFFLINE_AFTER || !navigator.onLine ? 'offline' : 'reconnecting');
    this.report(state(), left);
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      left -= 1;
      if (left > 0) return this.report(state(), left);
      clearInterval(this.timer);
      this.timer = null;
      this.connect();
    }, 1000);
  }

  /** No stream on this daemon: ask for changes every few seconds instead. */
  poll() {
    this.report('polling', POLL_SECONDS);
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!this.stopped) this.onPoll();
    }, POLL_SECONDS * 1000);
  }
}

// One stream for all the tabs of a browser.
//
// A browser opens at most six HTTP/1.1 connections to one origin, and every
// EventSource holds one for good: a seventh dashboard tab would wait for ever.
// So the tabs elect a leader with the Web Locks API (the lock is released when
// its tab closes or navigates away, and the next waiting tab takes it); only the
// leader opens the stream, and it relays every event and state change to the
// other tabs over a BroadcastChannel. A follower that becomes leader resumes
// after the last event id relayed to it. Neither API needs anything from the
// page's Content-Security-Policy. Where either is missing (Web Locks need a
// secure context: http://127.0.0.1 and http://localhost are; a plain-HTTP LAN
// address is not), each tab keeps its own stream, as before.

const CHANNEL = 'loopdash.live';
const LEADER_LOCK = 'loopdash.live.leader';

/** The shared connection where the browser allows it, else one stream per tab. */
export function liveConnection(api, callbacks) {
  const shared = typeof BroadcastChannel === 'function' && navigator.locks && typeof navigator.locks.request === 'function';
  return shared ? new SharedLiveConnection(api, callbacks) : new LiveConnection(api, callbacks);
}

export class SharedLiveConnection {
  constructor(api, {onMessage, onState, onPoll, onDenied, onLeaderAt}) {
    this.api = api;
    this.callbacks = {onMessage, onState, onPoll, onDenied, onLeaderAt};
    this.role = 'follower';
    this.lastEventId = null;
    this.connection = null;
    this.channel = null;
    this.stopped = true;
  }

  /** As LiveConnection.start: a tab that comes to lead resumes from `resumeFrom`. */
  start(resumeFrom = null) {
    this.stopped = false;
    if (resumeFrom) this.lastEventId = resumeFrom;
    this.channel = new BroadcastChannel(CHANNEL);
    this.channel.onmessage = (message) => this.heard(message.data);
    this.abort = new AbortController();
    this.callbacks.onState('connecting');
    this.post({kind: 'hello'}); // a leader, if there is one, answers with its state
    navigator.locks
      .request(LEADER_LOCK, {signal: this.abort.signal}, () => this.lead())
      .catch(() => {}); // aborted by stop()
  }

  /** Holding the lock: open the stream; the promise keeps the lock until stop() or the tab's end. */
  lead() {
    if (this.stopped) return undefined;
    this.role = 'leader';
    const {onMessage, onState, onPoll, onDenied} = this.callbacks;
    const connection = new LiveConnection(this.api, {
      onMessage: (event, context) => {
        this.post({kind: 'event', event, resumed: context.resumed, id: connection.lastEventId});
        onMessage(event, context);
      },
      onState: (state, secondsLeft) => {
        this.post({kind: 'state', state, secondsLeft});
        onState(state, secondsLeft);
      },
      onPoll: () => {
        this.post({kind: 'poll'});
        onPoll();
      },
      onDenied,
    });
    connection.lastEventId = this.lastEventId;
    this.connection = connection;
    connection.start();
    return new Promise((resolve) => {
      this.release = resolve;
    });
  }

  heard(message) {
    if (this.stopped || !message) return;
    if (this.role === 'leader') {
      if (message.kind === 'hello' && this.connection.state) {
        this.post({
          kind: 'state', state: this.connection.state, secondsLeft: this.connection.secondsLeft,
          id: this.connection.lastEventId,
        });
      } else if (message.kind === 'retry') {
        this.connection.retryNow();
      }
      return;
    }
    if (message.kind === 'event') {
      if (message.id) this.lastEventId = message.id;
      this.callbacks.onMessage(message.event, {resumed: message.resumed, id: message.id || null});
    } else if (message.kind === 'state' && message.state) {
      // The leader's stream may be past what this tab fetched: events it relayed
      // before this tab listened are not replayed to it, so it fetches again.
      if (message.id && this.callbacks.onLeaderAt) this.callbacks.onLeaderAt(message.id);
      this.callbacks.onState(message.state, message.secondsLeft);
    } else if (message.kind === 'poll') {
      this.callbacks.onPoll();
    }
  }

  retryNow() {
    if (this.role === 'leader') this.connection.retryNow();
    else this.post({kind: 'retry'});
  }

  stop() {
    this.stopped = true;
    if (this.connection) this.connection.stop();
    this.connection = null;
    this.role = 'follower';
    if (this.release) this.release();
    this.release = null;
    if (this.abort) this.abort.abort();
    if (this.channel) this.channel.close();
    this.channel = null;
  }

  post(message) {
    if (this.channel && !this.stopped) this.channel.postMessage(message);
  }
}
