// Notifications on the page: a toast for each `notification` event, a browser
// notification when this browser allows it, and a dialog to choose which kinds
// this browser shows (kept in localStorage) and to read the recent ones.

import {h, localTime} from './dom.js';

const KEY = 'loopdash.notify.kinds';
const TOAST_SECONDS = 12;
const MAX_TOASTS = 4;

export const KINDS = [
  ['run_finished', 'A run finished'],
  ['run_stopped', 'A run stopped without finishing'],
  ['run_stalled', 'A run stalled'],
  ['iteration_failed', 'An iteration failed'],
  ['failure_streak', 'Failures in a row'],
  ['story_completed', 'A story completed'],
  ['budget_warning', '80% of the budget spent'],
  ['budget_exceeded', 'The budget passed'],
];

function storedKinds() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || 'null');
    return Array.isArray(value) ? new Set(value) : null;
  } catch {
    return null; // storage refused or garbled: show what the daemon sends
  }
}

function browserNotifications() {
  return typeof Notification === 'function' ? Notification : null;
}

export class Notifier {
  constructor({api, button, dialog, toasts, onSettings}) {
    this.api = api;
    this.button = button;
    this.dialog = dialog;
    this.toasts = toasts;
    this.onSettings = onSettings || (() => {});
    this.kinds = storedKinds(); // null: every kind the daemon sends
    this.recent = [];
    this.settings = null;
    button.hidden = false;
    button.addEventListener('click', () => this.openDialog());
    dialog.addEventListener('close', () => button.focus());
  }

  /** The daemon's settings (budget, kinds) and its recent notifications. */
  async load() {
    let answer;
    try {
      answer = await this.api.get('api/notifications?limit=20');
    } catch (error) {
      if (error.status === 404) return; // an older daemon without notifications
      throw error;
    }
    this.recent = answer.notifications;
    this.settings = answer.settings;
    this.onSettings(answer.settings);
  }

  enabled(kind) {
    return this.kinds === null || this.kinds.has(kind);
  }

  /** One `notification` event from the stream. */
  received(notification) {
    this.recent = [notification, ...this.recent.filter((n) => n.id !== notification.id)].slice(0, 20);
    if (!this.enabled(notification.kind)) return;
    this.toast(notification);
    const Browser = browserNotifications();
    if (Browser && Browser.permission === 'granted') {
      try {
        new Browser(notification.title, {body: notification.message, tag: `loopdash-${notification.id}`});
      } catch {
        // Some browsers allow notifications only from a service worker: the toast is enough.
      }
    }
  }

  toast(notification) {
    const close = h('button', {type: 'button', class: 'link-button toast-close', 'aria-label': 'Dismiss'}, '✕');
    const item = h('li', {class: `toast severity-${notification.severity}`, dataset: {kind: notification.kind}},
      h('p', {class: 'toast-title'}, notification.title),
      h('p', {class: 'toast-message'}, notification.message),
      close);
    const remove = () => item.remove();
    close.addEventListener('click', remove);
    // A failure stays until dismissed; the rest leave after a while.
    if (notification.severity !== 'failure') setTimeout(remove, TOAST_SECONDS * 1000);
    this.toasts.append(item);
    while (this.toasts.children.length > MAX_TOASTS) this.toasts.firstElementChild.remove();
  }

  openDialog() {
    const Browser = browserNotifications();
    const permission = Browser ? Browser.permission : 'unsupported';
    const permissionText = {
      granted: 'This browser shows loopdash notifications.',
      denied: 'This browser blocks loopdash notifications (change it in the site settings).',
      default: 'This browser does not show loopdash notifications yet.',
      unsupported: 'This browser cannot show notifications; the page shows them as toasts.',
    }[permission];
    const allow = h('button', {type: 'button', id: 'notify-allow', hidden: permission !== 'default'}, 'Allow browser notifications');
    allow.addEventListener('click', async () => {
      await Browser.requestPermission();
      this.openDialog();
    });
    const boxes = KINDS.map(([kind, label]) => {
      const box = h('input', {type: 'checkbox', name: 'kind', value: kind});
      box.checked = this.enabled(kind);
      box.addEventListener('change', () => this.saveKinds());
      const off = this.settings && !this.settings.kinds.includes(kind);
      return h('li', {}, h('label', {class: 'check'}, box, ` ${label}`),
        off ? h('span', {class: 'muted'}, ' (off on the daemon)') : null);
    });
    const budget = this.settings && this.settings.budget_usd !== null && this.settings.budget_usd !== undefined
      ? `Budget per run: $${Number(this.settings.budget_usd).toFixed(2)}.` : 'No budget is set (--budget).';
    const targets = this.settings ? this.settings.targets || 0 : 0;
    this.dialog.replaceChildren(h('article', {class: 'notify-detail'},
      h('header', {},
        h('h2', {id: 'notify-dialog-title'}, 'Notifications'),
        h('form', {method: 'dialog'}, h('button', {class: 'close', 'aria-label': 'Close'}, '✕'))),
      h('p', {id: 'notify-permission'}, permissionText, ' ', allow),
      h('h3', {}, 'Show in this browser'),
      h('ul', {class: 'notify-kinds'}, boxes),
      h('p', {class: 'muted'}, budget, ' ',
        targets ? `The daemon also sends them to ${targets} service${targets === 1 ? '' : 's'}.` : ''),
      h('h3', {}, 'Recent'),
      this.recent.length
        ? h('ol', {class: 'notify-recent'}, this.recent.map((n) => h('li', {class: `severity-${n.severity}`},
          h('strong', {}, n.title), ' ', n.message, ' ', h('span', {class: 'muted'}, localTime(n.time)))))
        : h('p', {class: 'muted'}, 'Nothing yet.')));
    this.dialog.setAttribute('aria-labelledby', 'notify-dialog-title');
    if (!this.dialog.open) this.dialog.showModal();
  }

  saveKinds() {
    const chosen = [...this.dialog.querySelectorAll('input[name="kind"]')].filter((b) => b.checked).map((b) => b.value);
    this.kinds = new Set(chosen);
    try {
      localStorage.setItem(KEY, JSON.stringify(chosen));
    } catch {
      // Storage refused: the choice lasts for this page.
    }
  }
}
