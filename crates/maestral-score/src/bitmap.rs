//! Rendered pages as RGBA bitmaps, and the pool that recycles their buffers.
//!
//! A 4K page is tens of megabytes; allocating and faulting in a fresh buffer per page costs more
//! than the page's drawing (the probe measured ~18 ms at 4K). So PDFium draws straight into a
//! buffer taken from a small pool, and a bitmap's buffer goes back to the pool when the last
//! holder (the page cache, the app) lets go of it.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

/// One rendered page: RGBA8, rows top to bottom, no padding (`width * 4` bytes a row).
pub struct PageBitmap {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl PageBitmap {
    pub(crate) fn new(width: u32, height: u32, pixels: Vec<u8>, pool: &Arc<BufferPool>) -> Self {
        debug_assert_eq!(pixels.len(), width as usize * height as usize * 4);
        PageBitmap { width, height, pixels, pool: Arc::downgrade(pool) }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, RGBA8, `width * 4` bytes a row, top row first.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixel at column `x`, row `y` as `[r, g, b, a]`; `None` outside the bitmap.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let p = self.pixels.get(i..i + 4)?;
        Some([p[0], p[1], p[2], p[3]])
    }

    /// One row of pixels, RGBA8.
    pub fn row(&self, y: u32) -> Option<&[u8]> {
        if y >= self.height {
            return None;
        }
        let stride = self.width as usize * 4;
        let start = y as usize * stride;
        self.pixels.get(start..start + stride)
    }

    /// The memory this bitmap holds (what the page cache counts against its budget).
    pub fn byte_size(&self) -> usize {
        self.pixels.capacity()
    }
}

impl fmt::Debug for PageBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBitmap")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Drop for PageBitmap {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.pixels));
        }
    }
}

/// Spare pixel buffers, kept for the next render. Holds at most a few.
#[derive(Debug)]
pub(crate) struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    max_spare: usize,
}

/// Whether a buffer came from the pool or was freshly allocated (for the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferOrigin {
    Reused,
    Allocated,
}

impl BufferPool {
    pub(crate) fn new(max_spare: usize) -> Arc<Self> {
        Arc::new(BufferPool { spare: Mutex::new(Vec::new()), max_spare })
    }

    /// A buffer of exactly `len` bytes (contents unspecified: the renderer clears it).
    pub(crate) fn take(&self, len: usize) -> (Vec<u8>, BufferOrigin) {
        let reused = {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            // The smallest spare buffer that fits without wasting more than half of itself.
            let best = spare
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| spare.swap_remove(i))
        };
        match reused {
            Some(mut buffer) => {
                // Only bytes never written before need initialising; the rest are reused as is.
                if buffer.len() >= len {
                    buffer.truncate(len);
                } else {
                    buffer.resize(len, 0);
                }
                (buffer, BufferOrigin::Reused)
            }
            None => (vec![0u8; len], BufferOrigin::Allocated),
        }
    }

    pub(crate) fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < self.max_spare {
            spare.push(buffer);
        } else if let Some(smallest) = spare.iter_mut().min_by_key(|b| b.capacity()) {
            // Keep the larger buffers: they serve any smaller page too.
            if smallest.capacity() < buffer.capacity() {
                *smallest = buffer;
            }
        }
    }

    /// Bytes held in spare buffers.
    pub(crate) fn spare_bytes(&self) -> usize {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        spare.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_are_reused() {
        let pool = BufferPool::new(2);
        let (buf, origin) = pool.take(400);
        assert_eq!(origin, BufferOrigin::Allocated);
        let bitmap = PageBitmap::new(10, 10, buf, &pool);
        drop(bitmap);
        assert_eq!(pool.spare_bytes(), 400);
        let (buf, origin) = pool.take(360);
        assert_eq!((origin, buf.len()), (BufferOrigin::Reused, 360));
        // Too small a spare buffer is not used for a larger page.
        pool.give(buf);
        let (_, origin) = pool.take(4000);
        assert_eq!(origin, BufferOrigin::Allocated);
    }

    #[test]
    fn pixel_access() {
        let pool = BufferPool::new(1);
        let mut px = vec![0u8; 2 * 3 * 4];
        px[(2 * 2 + 1) * 4..(2 * 2 + 1) * 4 + 4].copy_from_slice(&[1, 2, 3, 4]);
        let b = PageBitmap::new(2, 3, px, &pool);
        assert_eq!(b.pixel(1, 2), Some([1, 2, 3, 4]));
        assert_eq!(b.pixel(2, 0), None);
        assert_eq!(b.row(2).map(<[u8]>::len), Some(8));
    }
}
