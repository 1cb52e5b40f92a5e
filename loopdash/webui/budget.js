// Money: the run's cost against its budget (a bar that turns amber at 80% and
// red past 100%), and what each story cost, from the current run's iterations.

import {h, money, plural} from './dom.js';
import {Routes} from './routes.js';

/** Cost and iterations per story id of one run's iterations. */
export function storyCosts(iterations) {
  const costs = new Map();
  for (const it of iterations || []) {
    const id = it.story_id || '?';
    const entry = costs.get(id) || {cost: 0, iterations: 0, succeeded: 0};
    entry.cost += Number(it.cost) || 0;
    entry.iterations += 1;
    if (it.status === 'success') entry.succeeded += 1;
    costs.set(id, entry);
  }
  return costs;
}

/** Cost per story completed in this run (stories with a successful iteration), or null. */
export function costPerCompletedStory(iterations) {
  const costs = storyCosts(iterations);
  const done = [...costs.values()].filter((entry) => entry.succeeded > 0).length;
  if (!done) return null;
  const total = [...costs.values()].reduce((sum, entry) => sum + entry.cost, 0);
  return total / done;
}

export class BudgetView {
  constructor(container) {
    this.container = container;
    this.budget = null;
    this.cost = null;
    this.fill = h('span', {class: 'budget-fill'});
    this.bar = h('span', {class: 'budget-bar', role: 'img'}, this.fill);
    this.text = h('span', {id: 'budget-text', class: 'budget-text'});
    container.replaceChildren(h('span', {class: 'budget-label'}, 'Budget'), this.bar, this.text);
  }

  setBudget(budget) {
    this.budget = budget === null || budget === undefined ? null : Number(budget);
    this.render();
  }

  setStatus(status) {
    this.cost = status ? Number(status.cost_so_far) || 0 : null;
    this.render();
  }

  render() {
    const {budget, cost} = this;
    this.container.hidden = budget === null || !(budget > 0);
    if (this.container.hidden || cost === null) return;
    const ratio = cost / budget;
    const level = ratio >= 1 ? 'over' : ratio >= 0.8 ? 'warn' : 'ok';
    this.container.dataset.level = level;
    this.fill.style.width = `${Math.min(ratio, 1) * 100}%`;
    const words = `${money(cost)} of ${money(budget)} (${Math.round(ratio * 100)}%)`
      + (level === 'over' ? ': over budget' : level === 'warn' ? ': nearly spent' : '');
    this.text.textContent = words;
    this.bar.setAttribute('aria-label', words);
  }
}

/** The "Cost by story" table of the current run, under the charts. */
export class CostByStory {
  constructor(container, routes = new Routes()) {
    this.container = container;
    this.routes = routes;
  }

  update(iterations, titles) {
    const costs = storyCosts(iterations);
    if (!costs.size) {
      this.container.replaceChildren();
      return;
    }
    const perDone = costPerCompletedStory(iterations);
    const rows = [...costs.entries()].sort((a, b) => b[1].cost - a[1].cost).map(([id, entry]) => h('tr', {},
      h('th', {scope: 'row'}, id === '?' ? '(no story)' : h('a', {href: this.routes.story(id)}, id),
        titles.get(id) ? h('span', {class: 'muted'}, ` ${titles.get(id)}`) : null),
      h('td', {class: 'num'}, plural(entry.iterations, 'iteration')),
      h('td', {class: 'num'}, money(entry.cost))));
    this.container.replaceChildren(
      h('h3', {id: 'cost-by-story-title'}, 'Cost by story'),
      h('p', {id: 'cost-per-story', class: 'muted'}, perDone === null
        ? 'No story completed in this run yet.'
        : `${money(perDone)} per story completed in this run.`),
      h('div', {class: 'table-wrap', tabindex: 0, role: 'region', 'aria-labelledby': 'cost-by-story-title'},
        h('table', {class: 'runs cost-by-story'},
          h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Story'), h('th', {scope: 'col', class: 'num'}, 'Iterations'),
            h('th', {scope: 'col', class: 'num'}, 'Cost'))),
          h('tbody', {}, rows))));
  }
}
