// What the browser tests and the benchmark read from a phone's page.

// The page has loaded and its code runs (the Join button is enabled then).
export const READY = "!!document.getElementById('join-button') && !document.getElementById('join-button').disabled";

// What the tab shows, or null: the visible page image's song and page, when it was swapped in
// (`at`, the page's clock) and when the page learned of that page (`heard`, null if not known).
export const SHOWN = `(() => { const i = [...document.querySelectorAll('img.page')].find((i) => !i.hidden && i.dataset.song);
  const h = (document.body.dataset.heard || '').split(' ');
  return i ? { song: i.dataset.song, page: Number(i.dataset.page), at: Number(i.dataset.shownAt),
    heard: h[0] === i.dataset.song && Number(h[1]) === Number(i.dataset.page) ? Number(h[2]) : null } : null; })()`;

// Waits until `tab` shows page `page` of `song` (asked every `everyMs`); what SHOWN says then.
export function showing(tab, song, page, what, timeoutMs, everyMs) {
  return tab.until(`(() => { const s = ${SHOWN}; return s && s.song === ${JSON.stringify(song)} && s.page === ${page} ? s : null; })()`, what, timeoutMs, everyMs);
}
