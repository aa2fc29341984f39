//! Buffers for the weights the passes compute.
//!
//! A computed weight is written once, front to back, into a fresh buffer.
//! For a large one, the cost is the page faults of that buffer, not the
//! arithmetic: measured on this project's 2-core VM, faulting in fresh
//! 4 KiB pages ran at ~8 µs a page (45 MB of new weights: 35 ms, more than
//! the BN folds that fill them). Large buffers are therefore anonymous
//! mappings marked for transparent huge pages (`MADV_HUGEPAGE`; Linux maps
//! anonymous regions of 2 MiB or more on 2 MiB boundaries): one fault per
//! 2 MiB, the same 45 MB in ~10 ms. Smaller buffers, other systems, or a
//! refused mapping use the heap. Either way the memory is the process's
//! own, counted and freed like any allocation (never given to
//! [`crate::mapped::release`], which is for file mappings only).
//!
//! A mapping whose tensor is gone is kept (a few, see [`SPARES`]) for the
//! next large buffer of about its size instead of being unmapped: a weight
//! a later pass replaces (RepVGG's BN-folded branch weights, merged into
//! one conv a pass later; LeViT's transposed weights scaled by a BN fold)
//! then lends its pages, already faulted in, to the next weight computed,
//! where a fresh mapping would fault and zero them again (and the old one
//! would be unmapped). Its old bytes stay until overwritten: every user
//! writes the bytes it exposes ([`Buffer::into_bytes`] takes the length
//! written), so none of them is ever read.

use std::sync::Mutex;

use bytes::Bytes;

/// From this size on, a buffer is its own mapping.
const MAPPED_FROM: usize = 2 << 20;

/// At most this many unused mappings are kept for reuse; the oldest is
/// unmapped to make room. A bound on what reuse adds to the peak memory.
const SPARES: usize = 4;

/// Mappings whose tensors are gone, oldest first.
static SPARE: Mutex<Vec<memmap2::MmapMut>> = Mutex::new(Vec::new());

pub(crate) enum Buffer {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// `len` bytes for the caller to write: zeros, or (for a large buffer)
    /// a reused mapping's old bytes. Callers expose only what they wrote.
    pub(crate) fn for_writing(len: usize) -> Buffer {
        if len >= MAPPED_FROM {
            if let Some(map) = take_spare(len) {
                return Buffer::Mapped(map);
            }
            if let Ok(map) = memmap2::MmapOptions::new().len(len).map_anon() {
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage);
                return Buffer::Mapped(map);
            }
        }
        Buffer::Heap(vec![0u8; len])
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Mapped(m) => m,
        }
    }

    /// The first `len` bytes, shared (not copied).
    pub(crate) fn into_bytes(self, len: usize) -> Bytes {
        match self {
            Buffer::Heap(mut v) => {
                v.truncate(len);
                Bytes::from(v)
            }
            Buffer::Mapped(m) => Bytes::from_owner(Owned(Some(m))).slice(..len),
        }
    }
}

/// The smallest kept mapping of at least `len` bytes and less than a huge
/// page more (a small weight does not pin a much larger mapping).
fn take_spare(len: usize) -> Option<memmap2::MmapMut> {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let (i, _) = spare
        .iter()
        .enumerate()
        .filter(|(_, m)| m.len() >= len && m.len() - len < MAPPED_FROM)
        .min_by_key(|(_, m)| m.len())?;
    Some(spare.remove(i))
}

/// A mapping owned by the `Bytes` of a tensor; kept for reuse when the
/// last of them goes.
struct Owned(Option<memmap2::MmapMut>);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let Some(map) = self.0.take() else { return };
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() == SPARES {
            // Unmapped after the lock is released.
            let oldest = spare.remove(0);
            spare.push(map);
            drop(spare);
            drop(oldest);
        } else {
            spare.push(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_hold_what_was_written() {
        for len in [
            0usize,
            10,
            MAPPED_FROM - 1,
            MAPPED_FROM,
            MAPPED_FROM * 2 + 12345,
        ] {
            let mut b = Buffer::for_writing(len);
            assert_eq!(b.as_mut_slice().len(), len);
            for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
                *x = (i % 251) as u8;
            }
            let keep = len.saturating_sub(7);
            let bytes = b.into_bytes(keep);
            assert_eq!(bytes.len(), keep);
            assert!(bytes.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        }
    }

    /// A large buffer's mapping, once its bytes are gone, is what the next
    /// buffer of about its size gets; the new bytes are what was written.
    #[test]
    fn a_dropped_mapping_is_reused_for_the_next_large_buffer() {
        // A size no other test here asks for, so a parallel test does not
        // take the spare first.
        let len = MAPPED_FROM * 9 + 4321;
        let mut b = Buffer::for_writing(len);
        b.as_mut_slice().fill(7);
        let first = b.as_mut_slice().as_ptr() as usize;
        drop(b.into_bytes(len));
        let mut again = Buffer::for_writing(len - 100);
        assert_eq!(again.as_mut_slice().as_ptr() as usize, first);
        again.as_mut_slice().fill(9);
        let bytes = again.into_bytes(len - 100);
        assert!(bytes.iter().all(|&x| x == 9));
    }
}
