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
            return Ok(Bytes::from_owner(map));
        }
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_files_read_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 10, MIN_MAP_BYTES as usize - 1, MIN_MAP_BYTES as usize, 300_001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(read(&p).unwrap().as_ref(), &data[..], "{len} bytes");
        }
        assert!(read(&dir.path().join("missing")).is_err());
    }
}
