//! The page cache: rendered pages kept for reuse, bounded in bytes, least recently used out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::bitmap::PageBitmap;
use crate::render::PixelSize;
use crate::song::SongId;

/// What a cached page is: a song's page rendered to fit a target box.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub song: SongId,
    pub page: u32,
    /// The box the page was fitted into (not the bitmap's own size).
    pub target: PixelSize,
}

/// Rendered pages, at most `budget` bytes of them; the least recently used go first.
///
/// A page larger than the whole budget is never kept. The cache counts the bitmaps it holds;
/// a bitmap the app still holds after eviction is the app's.
#[derive(Debug)]
pub struct PageCache {
    budget: usize,
    bytes: usize,
    peak_bytes: usize,
    clock: u64,
    entries: HashMap<PageKey, (Arc<PageBitmap>, u64)>,
    /// Last use → key, oldest first.
    by_age: BTreeMap<u64, PageKey>,
}

impl PageCache {
    /// 256 MiB: about twenty pages at 4K-fit, or seventy at 1080p-fit.
    pub const DEFAULT_BUDGET: usize = 256 << 20;

    pub fn new(budget: usize) -> Self {
        PageCache {
            budget,
            bytes: 0,
            peak_bytes: 0,
            clock: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// The page, if cached; it becomes the most recently used.
    pub fn get(&mut self, key: &PageKey) -> Option<Arc<PageBitmap>> {
        let now = self.tick();
        let (bitmap, used) = self.entries.get_mut(key)?;
        self.by_age.remove(used);
        *used = now;
        self.by_age.insert(now, key.clone());
        Some(bitmap.clone())
    }

    pub fn contains(&self, key: &PageKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Evicts least recently used pages until `incoming` more bytes fit in the budget.
    pub fn make_room(&mut self, incoming: usize) {
        while self.bytes + incoming > self.budget {
            let Some((_, key)) = self.by_age.pop_first() else {
                break;
            };
            if let Some((bitmap, _)) = self.entries.remove(&key) {
                self.bytes -= bitmap.byte_size();
            }
        }
    }

    /// Keeps `bitmap` as the most recently used page, evicting others as needed. Returns whether
    /// it was kept (a page larger than the budget is not).
    pub fn insert(&mut self, key: PageKey, bitmap: Arc<PageBitmap>) -> bool {
        self.remove(&key);
        let size = bitmap.byte_size();
        if size > self.budget {
            return false;
        }
        self.make_room(size);
        let now = self.tick();
        self.bytes += size;
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        self.by_age.insert(now, key.clone());
        self.entries.insert(key, (bitmap, now));
        true
    }

    pub fn remove(&mut self, key: &PageKey) -> Option<Arc<PageBitmap>> {
        let (bitmap, used) = self.entries.remove(key)?;
        self.by_age.remove(&used);
        self.bytes -= bitmap.byte_size();
        Some(bitmap)
    }

    /// Forgets every page of `song`.
    pub fn remove_song(&mut self, song: &SongId) {
        let keys: Vec<PageKey> = self.entries.keys().filter(|k| k.song == *song).cloned().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
        self.bytes = 0;
    }

    /// Changes the budget, evicting at once if the cache is now over it.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.make_room(0);
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most bytes ever held at once.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache::new(Self::DEFAULT_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitmap::BufferPool;

    fn page(pool: &Arc<BufferPool>, side: u32) -> Arc<PageBitmap> {
        let (buf, _) = pool.take((side * side * 4) as usize);
        Arc::new(PageBitmap::new(side, side, buf, pool))
    }

    fn key(page: u32) -> PageKey {
        PageKey {
            song: crate::song::song_id(b"s"),
            page,
            target: PixelSize { width: 10, height: 10 },
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_budget_holds() {
        let pool = BufferPool::new(0);
        let mut cache = PageCache::new(3 * 400);
        for p in 0..3 {
            assert!(cache.insert(key(p), page(&pool, 10)));
        }
        assert!(cache.get(&key(0)).is_some()); // 1 is now the oldest
        cache.insert(key(3), page(&pool, 10));
        assert!(!cache.contains(&key(1)));
        assert!(cache.contains(&key(0)) && cache.contains(&key(2)) && cache.contains(&key(3)));
        assert_eq!(cache.bytes(), 1200);
        assert!(cache.peak_bytes() <= cache.budget());
        // Too big for the whole budget: not kept, nothing evicted for it.
        assert!(!cache.insert(key(9), page(&pool, 20)));
        assert_eq!(cache.len(), 3);
        cache.set_budget(400);
        assert_eq!((cache.len(), cache.bytes()), (1, 400));
        assert!(cache.contains(&key(3)));
    }
}
