//! Model files read by memory-mapping them, not by copying them.
//!
//! Tensor payloads are `Bytes` slices of the buffer a model is decoded from
//! (prost slices `bytes` fields of a `Bytes` input), so with the file mapped
//! the weights are never copied on import: pages are read from the page
//! cache when a pass or the writer touches them, and tensors no pass
//! changed are written straight from the mapping. A run's peak memory is
//! then the IR plus the weights the passes compute, not a second copy of
//! the file.
//!
//! The one caveat of any mapping: another process truncating the file
//! while npuopt runs would fault the process (SIGBUS). Writing the output
//! over the input (`--force`) is safe — outputs are written to a temporary
//! file and renamed over the old name, so the mapped file itself is never
//! changed.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

/// Below this, a file is read into memory: a mapping costs a few system
/// calls and a page-granular tail, more than copying a small file.
const MIN_MAP_BYTES: u64 = 1 << 16;

/// The bytes of the file at `path`: mapped read-only for a regular file of
/// 64 KiB or more, else read. A file that cannot be mapped (a pipe, a
/// file system without mmap) is read.
pub fn read(path: &Path) -> std::io::Result<Bytes> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() >= MIN_MAP_BYTES {
        // SAFETY: the map is read-only and private; the one hazard is the
        // file changing under it, which the module documentation discusses
        // (npuopt itself never writes into a file it has open).
        if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
            return Ok(Bytes::from_owner(Mapping::register(MappedFile {
                map,
                file,
            })));
        }
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// A mapped model file, with the file kept open: the writer has the
/// kernel copy unchanged tensors from it (see [`file_range`]).
pub(crate) struct MappedFile {
    map: memmap2::Mmap,
    pub(crate) file: std::fs::File,
}

/// A mapping shared by the `Bytes` slices of it, registered so that
/// [`release`] and [`file_range`] can find it from a slice.
struct Mapping(Arc<MappedFile>);

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// The live mappings: start address, length, the map (weak: a mapping is
/// unmapped when its last slice goes, whatever the registry holds).
static MAPPINGS: Mutex<Vec<(usize, usize, Weak<MappedFile>)>> = Mutex::new(Vec::new());

impl Mapping {
    fn register(mapped: MappedFile) -> Mapping {
        let mapped = Arc::new(mapped);
        let mut all = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, _, w)| w.strong_count() > 0);
        all.push((
            mapped.map.as_ptr() as usize,
            mapped.map.len(),
            Arc::downgrade(&mapped),
        ));
        Mapping(mapped)
    }
}

/// The mapped file `bytes` lies in and its offset there, when `bytes` is
/// a slice of a mapped model file.
fn find(bytes: &[u8]) -> Option<(Arc<MappedFile>, usize)> {
    let start = bytes.as_ptr() as usize;
    let all = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .find(|(s, l, _)| start >= *s && start + bytes.len() <= s + l)
        .and_then(|(s, _, w)| Some((w.upgrade()?, start - s)))
}

/// The open file and offset `bytes` were mapped from, when it is a slice
/// of a mapped model file: the writer copies such a tensor from the file
/// to the output in the kernel, never mapping its pages.
pub(crate) fn file_range(bytes: &[u8]) -> Option<(Arc<MappedFile>, u64)> {
    find(bytes).map(|(m, offset)| (m, offset as u64))
}

/// Tells the kernel the pages under `bytes` are not needed now, when
/// `bytes` is a slice of a mapped model file: called for a weight a pass
/// replaced, so the old weight's pages (read once to compute the new one)
/// stop counting toward the run's memory while the new weight is held.
/// Always safe — the mapping is a private, read-only map of the file that
/// is never written, so a page read again comes back from the file
/// unchanged — and a no-op for bytes that are not mapped.
pub fn release(bytes: &[u8]) {
    if bytes.len() < PAGE {
        return;
    }
    let Some((mapped, offset)) = find(bytes) else {
        return;
    };
    // Whole pages inside the slice only: a page shared with a neighbour
    // stays (dropping it would be safe, but would cost the neighbour a
    // fault).
    let first = offset.next_multiple_of(PAGE);
    let end = (offset + bytes.len()) / PAGE * PAGE;
    if end > first {
        #[cfg(unix)]
        // SAFETY: MADV_DONTNEED on a private read-only file mapping drops
        // clean pages that are re-read from the file on the next access;
        // no one writes into this mapping, so no data can be lost.
        unsafe {
            let _ = mapped.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                first,
                end - first,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (mapped, first, end);
}

const PAGE: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_files_read_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            10,
            MIN_MAP_BYTES as usize - 1,
            MIN_MAP_BYTES as usize,
            300_001,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(read(&p).unwrap().as_ref(), &data[..], "{len} bytes");
        }
        assert!(read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1_000_000usize).map(|i| (i * 13 % 253) as u8).collect();
        let p = dir.path().join("m");
        std::fs::write(&p, &data).unwrap();
        let b = read(&p).unwrap();
        let part = b.slice(5000..900_000);
        assert_eq!(part.as_ref(), &data[5000..900_000]);
        release(&part);
        assert_eq!(part.as_ref(), &data[5000..900_000]);
        assert_eq!(b.as_ref(), &data[..]);
        // Not mapped: nothing happens.
        release(&data);
    }
}
