// Three small inline-SVG charts over a run's iterations: cumulative cost,
// tokens in/out, duration. Success and failure are marked by shape as well as
// colour. Hovering (or focusing a chart and using the arrow keys) shows every
// value of that iteration. Charts redraw at their container's pixel width.

import {h, s, money, compact, duration, integer} from './dom.js';

const HEIGHT = 190;
const MARGIN = {top: 12, right: 12, bottom: 28, left: 56};

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Round tick values from 0 to at least ``max``. */
export function ticks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const step = niceStep(max / count);
  const values = [];
  for (let i = 0; i * step < max + step * 0.999; i += 1) values.push(+(i * step).toPrecision(12));
  return values;
}

function outcome(iteration) {
  if (iteration.status === 'success') return 'ok';
  if (iteration.status === 'failure') return 'bad';
  return 'other';
}

function describe(iteration, index, cumulative) {
  const title = iteration.story_title ? ` ${iteration.story_title}` : '';
  return [
    `Iteration ${iteration.iteration ?? index + 1}: ${iteration.story_id || '?'}${title}`,
    `Result: ${iteration.status || 'unknown'}`,
    `Cost: ${money(iteration.cost)} (total ${money(cumulative[index])})`,
    `Tokens: ${integer(iteration.tokens_in)} in, ${integer(iteration.tokens_out)} out`,
    `Duration: ${duration((iteration.elapsed_ms || 0) / 1000)}`,
  ];
}

class Tooltip {
  constructor() {
    this.element = h('div', {class: 'chart-tooltip', role: 'tooltip', hidden: true});
    document.body.append(this.element);
  }

  show(lines, anchor) {
    this.element.replaceChildren(...lines.map((line, i) => h(i === 0 ? 'strong' : 'span', {}, line)));
    this.element.hidden = false;
    const box = this.element.getBoundingClientRect();
    const left = Math.min(Math.max(8, anchor.x - box.width / 2), window.innerWidth - box.width - 8);
    const top = anchor.y - box.height - 12 < 8 ? anchor.y + 16 : anchor.y - box.height - 12;
    this.element.style.left = `${left}px`;
    this.element.style.top = `${top}px`;
  }

  hide() {
    this.element.hidden = true;
  }
}

let sharedTooltip = null;
function tooltip() {
  sharedTooltip = sharedTooltip || new Tooltip();
  return sharedTooltip;
}

/** Axes, grid and scales for ``count`` columns and a y range from 0 to ``max``. */
function frame(width, count, max, format) {
  const plotWidth = Math.max(40, width - MARGIN.left - MARGIN.right);
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const yTicks = ticks(max);
  const top = yTicks[yTicks.length - 1];
  const band = plotWidth / Math.max(1, count);
  const scale = {
    band,
    x: (i) => MARGIN.left + band * (i + 0.5),
    y: (v) => MARGIN.top + plotHeight - (plotHeight * v) / top,
    bottom: MARGIN.top + plotHeight,
  };
  const grid = s('g', {class: 'grid', 'aria-hidden': 'true'});
  for (const value of yTicks) {
    const y = scale.y(value);
    grid.append(
      s('line', {x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: y, y2: y}),
      s('text', {x: MARGIN.left - 6, y: y + 4, 'text-anchor': 'end'}, format(value)),
    );
  }
  const every = Math.max(1, Math.ceil(count / Math.max(1, Math.floor(plotWidth / 34))));
  for (let i = 0; i < count; i += every) {
    grid.append(s('text', {x: scale.x(i), y: HEIGHT - 8, 'text-anchor': 'middle'}, `#${i + 1}`));
  }
  grid.append(s('line', {class: 'axis', x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: scale.bottom, y2: scale.bottom}));
  return {grid, scale, plotWidth};
}

/** [milliseconds per unit, suffix] for durations up to ``longest`` ms. */
function durationUnit(longest) {
  if (longest < 120000) return [1000, 's'];
  if (longest < 2 * 3600000) return [60000, 'm'];
  return [3600000, 'h'];
}

/** The marks of each chart: returns the SVG nodes drawn over the frame. */
const CHARTS = [
  {
    key: 'cost',
    title: 'Cumulative cost (USD)',
    max: (its, cumulative) => cumulative[cumulative.length - 1] || 0,
    format: (v) => (v === 0 ? '$0' : money(v)),
    summary: (its, cumulative) => `Cumulative cost over ${its.length} iterations, reaching ${money(cumulative[cumulative.length - 1])}.`,
    marks(its, cumulative, scale) {
      const points = cumulative.map((v, i) => `${scale.x(i)},${scale.y(v)}`);
      const nodes = [
        s('path', {class: 'area', d: `M${scale.x(0)},${scale.bottom} L${points.join(' L')} L${scale.x(its.length - 1)},${scale.bottom} Z`}),
        s('polyline', {class: 'line', points: points.join(' ')}),
      ];
      its.forEach((it, i) => {
        const x = scale.x(i);
        const y = scale.y(cumulative[i]);
        const kind = outcome(it);
        nodes.push(kind === 'bad'
          ? s('path', {class: `mark ${kind}`, d: `M${x - 5},${y - 5} L${x + 5},${y + 5} M${x + 5},${y - 5} L${x - 5},${y + 5}`})
          : s('circle', {class: `mark ${kind}`, cx: x, cy: y, r: 4.5}));
      });
      return nodes;
    },
  },
  {
    key: 'tokens',
    title: 'Tokens per iteration (in / out)',
    max: (its) => Math.max(0, ...its.map((it) => Math.max(it.tokens_in || 0, it.tokens_out || 0))),
    format: compact,
    summary: (its) => `Tokens in and out for ${its.length} iterations.`,
    legend: [['tin', 'tokens in'], ['tout', 'tokens out']],
    marks(its, cumulative, scale) {
      const width = Math.min(22, scale.band * 0.36);
      return its.flatMap((it, i) => [
        s('rect', {class: 'bar tin', x: scale.x(i) - width - 1, width, y: scale.y(it.tokens_in || 0), height: scale.bottom - scale.y(it.tokens_in || 0)}),
        s('rect', {class: 'bar tout', x: scale.x(i) + 1, width, y: scale.y(it.tokens_out || 0), height: scale.bottom - scale.y(it.tokens_out || 0)}),
      ]);
    },
  },
  {
    key: 'duration',
    title: 'Duration per iteration',
    // The unit follows the longest iteration: seconds, minutes or hours.
    unit: (its) => durationUnit(Math.max(0, ...its.map((it) => it.elapsed_ms || 0))),
    max(its) {
      const [size] = this.unit(its);
      return Math.max(0, ...its.map((it) => (it.elapsed_ms || 0) / size));
    },
    format: (v, its, spec) => `${+v.toFixed(1)}${spec.unit(its)[1]}`,
    summary: (its) => `Duration of ${its.length} iterations.`,
    legend: [['ok', 'success'], ['bad', 'failure (✕)']],
    marks(its, cumulative, scale) {
      const [size] = this.unit(its);
      const width = Math.min(36, scale.band * 0.6);
      return its.flatMap((it, i) => {
        const y = scale.y((it.elapsed_ms || 0) / size);
        const kind = outcome(it);
        const bar = s('rect', {class: `bar ${kind}`, x: scale.x(i) - width / 2, width, y, height: scale.bottom - y});
        return kind === 'bad' ? [bar, s('text', {class: 'cross', x: scale.x(i), y: y - 4, 'text-anchor': 'middle'}, '✕')] : [bar];
      });
    },
  },
];

/** One chart: figure, caption, SVG and hover/keyboard behaviour. */
class Chart {
  constructor(spec) {
    this.spec = spec;
    this.active = null;
    this.holder = h('div', {class: 'chart-canvas'});
    const legend = spec.legend
      ? h('ul', {class: 'legend'}, spec.legend.map(([cls, label]) => h('li', {}, h('span', {class: `swatch ${cls}`, 'aria-hidden': 'true'}), label)))
      : h('ul', {class: 'legend'},
        h('li', {}, h('span', {class: 'swatch ok round', 'aria-hidden': 'true'}), 'success'),
        h('li', {}, h('span', {class: 'swatch bad cross-mark', 'aria-hidden': 'true'}, '✕'), 'failure'));
    this.element = h('figure', {class: 'chart', dataset: {chart: spec.key}},
      h('figcaption', {}, spec.title), this.holder, legend);
  }

  draw(iterations, width) {
    this.iterations = iterations;
    let total = 0;
    this.cumulative = iterations.map((it) => (total += it.cost || 0));
    if (iterations.length === 0) {
      this.svg = null;
      this.holder.replaceChildren(h('p', {class: 'empty'}, 'No iterations yet.'));
      return;
    }
    const format = (v) => this.spec.format(v, iterations, this.spec);
    const {grid, scale} = frame(width, iterations.length, this.spec.max(iterations, this.cumulative), format);
    this.scale = scale;
    this.highlight = s('rect', {class: 'highlight', y: MARGIN.top, height: scale.bottom - MARGIN.top, width: scale.band, visibility: 'hidden'});
    const svg = s('svg', {
      width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', tabindex: 0,
      'aria-label': `${this.spec.summary(iterations, this.cumulative)} Use the arrow keys for each iteration's values.`,
      onpointermove: (event) => this.pointAt(event),
      onpointerleave: () => this.select(null),
      onkeydown: (event) => this.key(event),
      onfocus: () => this.select(this.active ?? iterations.length - 1, null),
      onblur: () => this.select(null),
    }, this.highlight, grid, this.spec.marks(iterations, this.cumulative, scale));
    this.svg = svg;
    this.holder.replaceChildren(svg);
    if (this.active !== null && this.active >= iterations.length) this.active = null;
  }

  pointAt(event) {
    const box = this.svg.getBoundingClientRect();
    const x = event.clientX - box.left - MARGIN.left;
    const index = Math.floor(x / this.scale.band);
    if (index < 0 || index >= this.iterations.length) return this.select(null);
    this.select(index, {x: event.clientX, y: event.clientY});
  }

  key(event) {
    const last = this.iterations.length - 1;
    const moves = {ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity};
    if (event.key === 'Escape') return this.select(null);
    if (!(event.key in moves)) return;
    event.preventDefault();
    const from = this.active ?? last;
    this.select(Math.max(0, Math.min(last, from + moves[event.key])), null);
  }

  select(index, anchor) {
    if (index === null || !this.svg) {
      if (this.highlight) this.highlight.setAttribute('visibility', 'hidden');
      tooltip().hide();
      return;
    }
    this.active = index;
    this.highlight.setAttribute('x', this.scale.x(index) - this.scale.band / 2);
    this.highlight.setAttribute('visibility', 'visible');
    const box = this.svg.getBoundingClientRect();
    const point = anchor || {x: box.left + this.scale.x(index), y: box.top + MARGIN.top};
    tooltip().show(describe(this.iterations[index], index, this.cumulative), point);
  }
}

/** The three charts of one run, redrawn when the data or the width changes. */
export class ChartPanel {
  constructor(container) {
    this.container = container;
    this.charts = CHARTS.map((spec) => new Chart(spec));
    this.iterations = [];
    this.width = 0;
    container.replaceChildren(...this.charts.map((chart) => chart.element));
    new ResizeObserver(() => {
      const width = this.measure();
      if (width !== this.width) this.redraw();
    }).observe(container);
  }

  measure() {
    return Math.floor(this.charts[0].holder.clientWidth) || 0;
  }

  update(iterations) {
    this.iterations = iterations || [];
    this.redraw();
  }

  redraw() {
    this.width = this.measure();
    const width = this.width || 320;
    for (const chart of this.charts) chart.draw(this.iterations, width);
  }
}
