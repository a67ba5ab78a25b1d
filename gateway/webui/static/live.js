// live.js: the secrets list follows the project's change stream (events.js),
// so that what other people create, change and delete shows without a
// reload. Events name a secret and its version, never more: the list asks
// the gateway for the metadata of a changed secret it shows, and re-lists
// on `resync` or when it could not resume (docs/api.md, "Change
// notifications").
//
// What the user is doing is never thrown away: an event is applied to the
// list only, and the open secret's details are not redrawn; when the open
// secret changed, app.staleDetails shows a notice with a reload button.
// While the user's own request is on its way (app.hold), events wait, so
// that its answer is in the list first and its own event is recognised
// (same version) rather than reported as someone else's change.

import { validName } from './api.js';
import { LiveStream, later } from './events.js';

/** The events that name a secret; "resync" is the other one. */
const KINDS = new Set(['secret.created', 'secret.updated', 'secret.deleted']);

/**
 * Each changed secret the list shows costs one metadata read per open page
 * (and the gateway one backend read). To keep bursts (an import, a
 * migration) cheap, changes are gathered for batchDelay before they are
 * read, and more than maxFetches of them cost one re-list instead.
 */
export const batchDelay = 100;
const maxFetches = 20;

/** firstListWait: how long the first list waits for the stream to open (so that no write falls between them). */
const firstListWait = 2000;

/** hiddenClose: a tab hidden this long closes its stream, and resumes it (Last-Event-ID) when shown again. */
export const hiddenClose = 5 * 60 * 1000;

/**
 * createLive makes the live updates of one page. app (app.js) gives:
 * state, loadSecrets(more, {pageSize}), putSecret(meta), dropSecret(name),
 * inList(name), staleDetails(name, meta or null), fail(err), and
 * liveState(kind, text) to show how the stream is doing.
 */
export function createLive(app) {
  const { state } = app;
  let stream = null;
  let project = '';
  let listed = false; // a list of this project was asked since the stream started
  let firstTimer = null;
  let hiddenTimer = null;
  let paused = false; // closed because the tab was hidden for long
  let holds = 0;
  let pumping = false;
  let batchTimer = null;
  const queue = { relist: false, names: new Map() }; // name -> {kind, version, force}

  function reset() {
    queue.relist = false;
    queue.names.clear();
    clearTimeout(firstTimer);
    firstTimer = null;
    clearTimeout(batchTimer);
    batchTimer = null;
  }

  function stop() {
    if (stream) stream.stop();
    stream = null;
    project = '';
    reset();
    clearTimeout(hiddenTimer);
    hiddenTimer = null;
  }

  /** start follows project p (and stops following any other); it also makes the first list. */
  function start(p) {
    stop();
    project = p;
    listed = false;
    paused = false;
    const s = new LiveStream({
      open: ({ lastEventId, signal }) => state.client.events(p, { lastEventId, signal }),
      onEvent: (ev) => onEvent(s, ev),
      onState: (kind, info) => onState(s, kind, info),
    });
    stream = s;
    // The first list is asked once the stream is open, so that a write
    // between the two is in one or the other; if the stream is slow to
    // open, the list does not wait for it longer than this.
    firstTimer = later(() => {
      if (stream === s && !listed) relist();
    }, firstListWait);
    s.start();
  }

  function onState(s, kind, info) {
    if (s !== stream) return;
    switch (kind) {
      case 'open':
        // Opened without an id (the first time, or before any event came):
        // what happened while it was closed is unknown, so re-list.
        if (!info.resumed) relist();
        app.liveState('live', 'Live');
        break;
      case 'connecting':
        app.liveState('connecting', 'Connecting…');
        break;
      case 'retrying':
        app.liveState('retrying', 'Reconnecting…');
        break;
      case 'stopped':
        if (info.error && info.error.status === 401) {
          app.fail(info.error);
          return;
        }
        if (!listed) relist();
        app.liveState('off', 'Live updates off');
        break;
      case 'closed':
        app.liveState('paused', 'Live updates paused');
        break;
      default:
    }
  }

  function relist() {
    listed = true;
    clearTimeout(firstTimer);
    queue.relist = true;
    queue.names.clear();
    pump();
  }

  function onEvent(s, ev) {
    if (s !== stream) return;
    if (ev.type === 'resync') {
      relist();
      return;
    }
    if (!KINDS.has(ev.type)) return;
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      return; // not an event of this gateway's
    }
    if (!d || d.project !== project || !validName(d.name) || !Number.isSafeInteger(d.version)) return;
    const prev = queue.names.get(d.name);
    // A delete then a create may start the versions again at 1: after a
    // delete, the metadata is read whatever the version says.
    const force = !!prev && (prev.force || prev.kind === 'secret.deleted');
    queue.names.set(d.name, { kind: ev.type, version: d.version, force });
    schedule();
  }

  /** schedule reads the changes gathered in the next batchDelay (counted from the first, so a steady flow is not held back). */
  function schedule() {
    if (batchTimer !== null) return;
    batchTimer = later(() => {
      batchTimer = null;
      pump();
    }, batchDelay);
  }

  /** hold runs fn (a request of the user's) while events wait. */
  async function hold(fn) {
    holds++;
    try {
      return await fn();
    } finally {
      holds--;
      pump();
    }
  }

  /** pump applies what is queued, unless a request of the user's is on its way (hold calls it again after). */
  async function pump() {
    if (pumping || holds > 0 || !stream) return;
    pumping = true;
    try {
      if (queue.relist || queue.names.size > maxFetches) {
        queue.relist = false;
        queue.names.clear();
        await hold(() => app.loadSecrets(false, { pageSize: state.secrets.length }));
        // The open secret may have changed meanwhile too.
        if (state.selected) queue.names.set(state.selected.name, { kind: 'secret.updated', version: state.selected.version + 1, force: true });
      } else if (queue.names.size > 0) {
        const batch = [...queue.names];
        queue.names.clear();
        await Promise.all(batch.map(([name, e]) => apply(name, e)));
      }
    } finally {
      pumping = false;
    }
    // What came meanwhile: a re-list at once, changes after their batch delay.
    if (queue.relist) pump();
    else if (queue.names.size > 0) schedule();
  }

  /** apply shows one secret's change. */
  async function apply(name, e) {
    const p = project;
    const selected = () => (state.selected && state.selected.name === name && state.selected.project === p ? state.selected : null);
    if (e.kind === 'secret.deleted') {
      if (state.secrets.some((m) => m.name === name)) app.dropSecret(name);
      if (selected()) app.staleDetails(name, null);
      return;
    }
    const known = state.secrets.find((m) => m.name === name);
    const sel = selected();
    const news = (v) => v === undefined || e.version > v;
    if (!e.force && (known ? !news(known.version) : !app.inList(name)) && !(sel && news(sel.version))) return;
    const gen = state.generation;
    let meta;
    try {
      meta = await state.client.metadata(p, name);
    } catch (err) {
      if (p !== project) return;
      if (err.code === 'not_found') {
        if (state.secrets.some((m) => m.name === name)) app.dropSecret(name);
        if (selected()) app.staleDetails(name, null);
      } else if (err.status === 401) {
        app.fail(err);
      }
      // Other failures leave the list as it is: the next event or re-list mends it.
      return;
    }
    if (p !== project) return;
    const row = state.secrets.find((m) => m.name === name);
    // A list asked since holds what this read saw, or newer.
    if (gen === state.generation && (e.force || !row || row.version <= meta.version)) app.putSecret(meta);
    const now = selected();
    if (now && meta.version > now.version) app.staleDetails(name, meta);
  }

  /**
   * visibility closes the stream of a tab hidden for long (the gateway and
   * any proxy keep one connection per open tab), and resumes it, from the
   * last event seen, when the tab shows again.
   */
  function visibility(hidden) {
    clearTimeout(hiddenTimer);
    hiddenTimer = null;
    if (!stream) return;
    if (hidden) {
      const s = stream;
      hiddenTimer = later(() => {
        if (stream !== s) return;
        paused = true;
        s.stop();
      }, hiddenClose);
    } else if (paused) {
      paused = false;
      stream.start();
    }
  }

  return { start, stop, hold, visibility };
}
