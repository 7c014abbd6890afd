// The Follower's registers (docs/behaviour.md §11.2–§11.4):
// the newest Master position seen, judged by song epoch and page revision, and the page this
// device shows. Ported from the Rust Follower; a rule here never moves a Follower back to an
// older epoch or revision, whatever order messages (or their copies) arrive in.

const U32_MAX = 4294967295;

export class Position {
  constructor() {
    // The newest Master position seen.
    this.songEpoch = 0;
    this.pageRevision = 0;
    this.masterSong = null;
    this.masterPage = 0;
    // Whether a Master position has been seen in this session.
    this.haveMaster = false;
    // A SET_PAGE of a newer epoch than ours, held until that epoch's song arrives (messages may
    // be reordered); never applied to an older epoch.
    this.pending = null;
    // What this device shows.
    this.shownSong = null;
    this.shownPage = 0;
  }

  view() {
    return { song_id: this.shownSong, page_index: this.shownPage };
  }

  // The newest Master position, once one has been seen in this session.
  masterView() {
    return this.haveMaster ? { song_id: this.masterSong, page_index: this.masterPage } : null;
  }

  // Another session: its epochs start from scratch (the page shown stays).
  forgetMaster() {
    this.songEpoch = 0;
    this.pageRevision = 0;
    this.haveMaster = false;
    this.masterSong = null;
    this.masterPage = 0;
    this.pending = null;
  }

  // Switching to follow shows the newest Master position at once.
  showMaster() {
    if (!this.haveMaster) return;
    this.shownSong = this.masterSong;
    this.shownPage = this.masterPage;
  }

  // Local navigation never waits for, nor tells, the Master.
  navigate(a) {
    if (a.kind === 'set_page') this.shownPage = a.page;
    else if (a.kind === 'next_page') this.shownPage = Math.min(this.shownPage + 1, U32_MAX);
    else if (a.kind === 'prev_page') this.shownPage = Math.max(this.shownPage - 1, 0);
    else {
      // Opening another score locally (e.g. alone, or browsing while free).
      this.shownSong = a.song_id;
      this.shownPage = 0;
    }
  }

  // SET_SONG: only a newer epoch counts.
  applySetSong(songId, epoch, follow) {
    if (epoch > this.songEpoch) this.newSongContext(songId, epoch, 0, 0, follow);
  }

  // SET_PAGE: only the current epoch, only a strictly newer revision; a newer epoch's page
  // waits for its song. A free Follower records it but keeps its own page.
  applySetPage(p, follow) {
    if (p.song_epoch === this.songEpoch) {
      if (p.page_revision > this.pageRevision) {
        this.pageRevision = p.page_revision;
        this.masterPage = p.page_index;
        if (follow) {
          this.shownSong = this.masterSong;
          this.shownPage = p.page_index;
        }
      }
    } else if (p.song_epoch > this.songEpoch) {
      const q = this.pending;
      if (q === null || p.song_epoch > q.song_epoch || (p.song_epoch === q.song_epoch && p.page_revision > q.page_revision)) {
        this.pending = p;
      }
    }
  }

  // JOIN_ACCEPT / STATE_SNAPSHOT: a newer epoch is a new song context; the same epoch at an
  // equal or newer revision puts a follow-mode Follower on the snapshot's page, even a revision
  // seen before (it may have turned pages locally while the Master was away).
  applySnapshot(snap, follow) {
    if (snap.song_epoch > this.songEpoch) {
      this.newSongContext(snap.song_id, snap.song_epoch, snap.page_index, snap.page_revision, follow);
    } else if (snap.song_epoch === this.songEpoch && snap.page_revision >= this.pageRevision) {
      this.pageRevision = snap.page_revision;
      this.masterSong = snap.song_id;
      this.masterPage = snap.page_index;
      this.haveMaster = true;
      if (follow) {
        this.shownSong = this.masterSong;
        this.shownPage = snap.page_index;
      }
    }
  }

  // §11.3: a newer epoch replaces the page context; free Followers take song changes too (and
  // the page that comes with them).
  newSongContext(songId, epoch, page, revision, follow) {
    this.songEpoch = epoch;
    this.pageRevision = revision;
    this.masterSong = songId;
    this.masterPage = page;
    this.haveMaster = true;
    this.shownSong = songId;
    this.shownPage = page;
    const p = this.pending;
    this.pending = null;
    if (p !== null && p.song_epoch >= epoch) this.applySetPage(p, follow);
  }
}
