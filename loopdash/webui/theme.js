// Light, dark, or the system's choice (prefers-color-scheme), remembered on
// this device. The stylesheet does the work through [data-theme].

const KEY = 'loopdash.theme';
const ORDER = ['auto', 'light', 'dark'];
const LABELS = {auto: 'Theme: auto', light: 'Theme: light', dark: 'Theme: dark'};

export class Theme {
  constructor(button) {
    this.button = button;
    this.choice = ORDER.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : 'auto';
    button.addEventListener('click', () => this.set(ORDER[(ORDER.indexOf(this.choice) + 1) % ORDER.length]));
    this.apply();
  }

  set(choice) {
    this.choice = choice;
    if (choice === 'auto') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
    this.apply();
  }

  apply() {
    if (this.choice === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = this.choice;
    this.button.textContent = LABELS[this.choice];
    this.button.setAttribute('aria-label', `${LABELS[this.choice]} (switch theme)`);
  }
}
