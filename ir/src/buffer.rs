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

use bytes::Bytes;

/// From this size on, a buffer is its own mapping.
const MAPPED_FROM: usize = 2 << 20;

pub(crate) enum Buffer {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Buffer {
        if len >= MAPPED_FROM {
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
            Buffer::Mapped(m) => Bytes::from_owner(Owned(m)).slice(..len),
        }
    }
}

struct Owned(memmap2::MmapMut);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.0
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
            let mut b = Buffer::zeroed(len);
            assert!(b.as_mut_slice().iter().all(|&x| x == 0));
            for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
                *x = (i % 251) as u8;
            }
            let keep = len.saturating_sub(7);
            let bytes = b.into_bytes(keep);
            assert_eq!(bytes.len(), keep);
            assert!(bytes.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        }
    }
}
