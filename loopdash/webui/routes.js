// The page's addresses (#/stories/<id>, #/runs/<id>, #/commits/<sha>) for one
// project. On a single-project daemon they are the page's own (base ''); on a
// multi-project daemon each project's view lives below #/p/<id>, so every link a
// view makes goes through the Routes it was given, never a literal '#/...'.

export class Routes {
  /** `projectId`: the project a view shows on a multi-project daemon; null: the only one. */
  constructor(projectId = null) {
    this.projectId = projectId;
    this.base = projectId === null ? '' : `#/p/${encodeURIComponent(projectId)}`;
  }

  /** The project's main view: '#/' alone, '#/p/<id>' below the overview. */
  home() {
    return this.base || '#/';
  }

  story(id) {
    return `${this.base || '#'}/stories/${encodeURIComponent(id)}`;
  }

  run(id) {
    return `${this.base || '#'}/runs/${encodeURIComponent(id)}`;
  }

  commit(sha) {
    return `${this.base || '#'}/commits/${sha}`;
  }

  /**
   * `hash` as the single-project page would have it ('#/', '#/runs/<id>', ...),
   * or null when it is not this project's (the overview, another project).
   */
  local(hash) {
    if (!this.base) return hash;
    if (hash === this.base || hash === `${this.base}/`) return '#/';
    if (hash.startsWith(`${this.base}/`)) return `#${hash.slice(this.base.length)}`;
    return null;
  }
}

/** The project id a hash names (#/p/<id> or below it), or null: the overview. */
export function projectOf(hash) {
  const match = /^#\/p\/([^/]+)(?:\/|$)/.exec(hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch (error) {
    return null; // a malformed escape: no project of ours
  }
}
