// What a Follower keeps of its session across a reload of the page (e.g. in localStorage), and
// taking it back: ported from the Rust Follower's resume record. The page shows its page at
// once and rejoins by itself, as after a drop-out (docs/behaviour.md §6.3: the Follower stores its token).

import { LINK } from './core.mjs';

// The record of a session accepted at least once, with its Master known (a first join not yet
// accepted is not kept: its code may be wrong); null otherwise. Plain data, JSON-safe.
export function resumeRecord(f) {
  const s = f._session;
  const p = f._pos;
  if (s === null || !s.everJoined || s.master === null) return null;
  return {
    master: s.master,
    session_id: s.id,
    token: s.token,
    follow_mode: f._followMode,
    song_epoch: p.songEpoch,
    page_revision: p.pageRevision,
    master_song: p.masterSong,
    master_page: p.masterPage,
    shown_song: p.shownSong,
    shown_page: p.shownPage,
  };
}

function isCount(v) {
  return Number.isSafeInteger(v) && v >= 0;
}

function isSong(v) {
  return v === null || typeof v === 'string';
}

// A record that came back from storage may be anything: only a whole one is taken.
function valid(r) {
  return (
    r !== null &&
    typeof r === 'object' &&
    typeof r.master === 'string' &&
    typeof r.session_id === 'string' &&
    typeof r.token === 'string' &&
    r.token !== '' &&
    (r.follow_mode === 'follow' || r.follow_mode === 'free') &&
    isCount(r.song_epoch) &&
    isCount(r.page_revision) &&
    isSong(r.master_song) &&
    isCount(r.master_page) &&
    isSong(r.shown_song) &&
    isCount(r.shown_page)
  );
}

// Takes back a kept session at `t`; returns whether the record was taken.
export function resume(f, t, saved) {
  if (!valid(saved)) return false;
  if (f._session !== null) {
    const old = f._session;
    f._session = null;
    f._leave(t, old);
  }
  const p = f._pos;
  f._followMode = saved.follow_mode;
  p.songEpoch = saved.song_epoch;
  p.pageRevision = saved.page_revision;
  p.masterSong = saved.master_song;
  p.masterPage = saved.master_page;
  p.haveMaster = true;
  p.pending = null;
  f._sessionIdSeen = saved.session_id;
  p.shownSong = saved.shown_song;
  p.shownPage = saved.shown_page;
  // Rejoining at once (the attempt runs now), then on the usual backoff.
  f._session = f._membership(t, saved.master, saved.session_id, saved.token, true);
  f._core.setLink(t, saved.master, LINK.RECONNECTING);
  f._core.request('connect', saved.master);
  return true;
}
