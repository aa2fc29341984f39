//! [`Model`] → bytes, written atomically.
//!
//! Nothing the IR does not model is rebuilt: node, graph and model headers
//! are the ones read, with names and wiring filled back in. prost writes
//! fields in tag order, as the C++ protobuf runtime does, so a model from
//! PyTorch's exporters comes back byte for byte when no pass changed it.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut};
use prost::Message;

use crate::encode::Plan;
use crate::error::{IrError, Result};
use crate::graph::Graph;
use crate::model::Model;
use crate::proto::tensor_proto::DataLocation;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{Tensor as TypeTensor, Value as TypeValue};
use crate::proto::{
    GraphProto, ModelProto, StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::shape::{Dim, TensorType};

/// protobuf cannot encode a message of 2 GiB or more.
pub const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

/// How to write tensors to a side file instead of inside the model.
#[derive(Clone, Debug)]
pub struct ExternalData {
    /// File name, relative to the model's folder.
    pub location: String,
    /// Tensors smaller than this stay inside the model.
    pub min_bytes: u64,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Always write large tensors externally. When `None`, tensors go
    /// external only if the model would pass protobuf's 2 GiB limit (then to
    /// `<model file name>.data`).
    pub external: Option<ExternalData>,
    /// Do not fsync before the rename. The output is still never partial
    /// (it is renamed into place), but a power loss right after the run may
    /// lose it. For benchmarks that time the encoder, not the disk; the
    /// command line always syncs.
    pub skip_sync: bool,
}

pub fn value_info_proto(name: &str, ty: &TensorType) -> ValueInfoProto {
    let shape = ty.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Known(v) => Some(dimension::Value::DimValue(*v)),
                    Dim::Sym(s) => Some(dimension::Value::DimParam(s.to_string())),
                    Dim::Unknown => None,
                },
                denotation: None,
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(TypeValue::TensorType(TypeTensor {
                elem_type: Some(ty.dtype.0),
                shape,
            })),
        }),
        ..Default::default()
    }
}

fn with_name(name: &str, mut info: ValueInfoProto) -> ValueInfoProto {
    if info.name.as_deref() != Some(name) {
        info.name = Some(name.to_string());
    }
    info
}

impl Graph {
    /// The graph as a `GraphProto`. Tensor payloads are shared, not copied.
    pub fn to_proto(&self) -> Result<GraphProto> {
        let order = self.topo_order()?;
        let mut g = self.header.clone();
        let name = |v| self.value(v).name.to_string();
        g.node = order
            .iter()
            .map(|&id| {
                let n = self.node(id);
                let names = |vs: &[Option<crate::ValueId>]| {
                    vs.iter().map(|v| v.map(name).unwrap_or_default()).collect()
                };
                n.to_proto(names(&n.inputs), names(&n.outputs))
            })
            .collect();
        g.initializer = self
            .initializers()
            .map(|v| {
                let t = self.value(v).initializer.as_deref().expect("initializer");
                let mut p = t.proto().clone();
                if p.name.as_deref() != Some(self.value(v).name.as_str()) {
                    p.name = Some(self.value(v).name.to_string());
                }
                p
            })
            .collect();
        g.input = self
            .inputs
            .iter()
            .map(|(v, info)| with_name(&self.value(*v).name, info.clone()))
            .collect();
        g.output = self
            .outputs
            .iter()
            .map(|(v, info)| with_name(&self.value(*v).name, info.clone()))
            .collect();
        g.value_info = self
            .value_infos()
            .map(|(v, info)| match v {
                Some(v) => with_name(&self.value(v).name, info.clone()),
                None => info.clone(),
            })
            .collect();
        Ok(g)
    }
}

impl Model {
    pub fn to_proto(&self) -> Result<ModelProto> {
        let mut m = self.header.clone();
        m.graph = Some(self.graph.to_proto()?);
        Ok(m)
    }

    /// The encoded model, all tensors inline: the bytes of
    /// `self.to_proto()?.encode_to_vec()`, written straight from the IR
    /// (see `ir/src/encode.rs`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let plan = Plan::new(self)?;
        if plan.len() as u64 > PROTOBUF_LIMIT {
            return Err(IrError::Invalid(
                "the model exceeds protobuf's 2 GiB limit; write it to a file with external data"
                    .into(),
            ));
        }
        let mut out = Vec::with_capacity(plan.len());
        plan.encode(&mut out);
        debug_assert_eq!(out.len(), plan.len());
        Ok(out)
    }

    /// Writes the model to `path` atomically: to a temporary file in the
    /// same folder, then renamed into place, so `path` never holds a partial
    /// model, even if the process is killed. Returns the bytes written to
    /// `path` (see [`Model::write_sized`] for the side file's too).
    /// Tensors stay inline unless `opts` asks for external data or the
    /// model would pass protobuf's limit; inline, the model is encoded
    /// straight from the IR (see `ir/src/encode.rs`).
    pub fn write(&self, path: &Path, opts: &WriteOptions) -> Result<u64> {
        self.write_sized(path, opts).map(|w| w.model_bytes)
    }

    /// [`Model::write`], returning the bytes of the model file and of its
    /// side file.
    pub fn write_sized(&self, path: &Path, opts: &WriteOptions) -> Result<Written> {
        if opts.external.is_none() {
            let plan = Plan::new(self)?;
            if plan.len() as u64 <= PROTOBUF_LIMIT {
                return write_encoded(path, opts, None, |sink| {
                    plan.encode(sink);
                    Ok(())
                });
            }
        }
        write_proto_sized(self.to_proto()?, path, opts)
    }
}

/// What a write put on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The model file.
    pub model_bytes: u64,
    /// Its external-data side file (0: none written).
    pub external_bytes: u64,
}

/// Writes a `ModelProto` atomically, moving tensors to a side file when asked
/// or when the model is too large for protobuf.
pub fn write_proto(m: ModelProto, path: &Path, opts: &WriteOptions) -> Result<u64> {
    write_proto_sized(m, path, opts).map(|w| w.model_bytes)
}

fn write_proto_sized(mut m: ModelProto, path: &Path, opts: &WriteOptions) -> Result<Written> {
    let werr = |message: String| IrError::Write {
        path: path.to_path_buf(),
        message,
    };
    let dir = folder_of(path);
    let external = match &opts.external {
        Some(e) => Some(e.clone()),
        None if m.encoded_len() as u64 > PROTOBUF_LIMIT => Some(ExternalData {
            location: format!(
                "{}.data",
                path.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ),
            min_bytes: 1024,
        }),
        None => None,
    };
    let mut data_file = None;
    if let Some(ext) = &external {
        let target = crate::external::resolve_new(&dir, &ext.location).map_err(werr)?;
        let tmp = move_tensors_out(&mut m, ext, &dir).map_err(|e| werr(e.to_string()))?;
        data_file = Some((tmp, target));
    }
    if m.encoded_len() as u64 > PROTOBUF_LIMIT {
        return Err(werr(
            "the model is over protobuf's 2 GiB limit even with its tensors external".into(),
        ));
    }
    write_encoded(path, opts, data_file, |sink| {
        m.encode(sink).map_err(|e| e.to_string())
    })
}

/// Writes what `encode` puts into its sink to a temporary file in `path`'s
/// folder, syncs it (unless `opts.skip_sync`), moves `data_file` (a side
/// file and its final name) into place, then renames the model over
/// `path`. Returns the bytes written.
fn write_encoded(
    path: &Path,
    opts: &WriteOptions,
    data_file: Option<(tempfile::NamedTempFile, PathBuf)>,
    encode: impl FnOnce(&mut StreamingBuf) -> std::result::Result<(), String>,
) -> Result<Written> {
    let werr = |message: String| IrError::Write {
        path: path.to_path_buf(),
        message,
    };
    let dir = folder_of(path);
    let mut tmp = temp_builder(path, ".tmp").tempfile_in(&dir).map_err(|e| {
        werr(format!(
            "cannot create a temporary file in '{}': {e}",
            dir.display()
        ))
    })?;
    let written = {
        let mut sink = StreamingBuf::new(tmp.as_file_mut(), !opts.skip_sync);
        encode(&mut sink).map_err(werr)?;
        sink.finish().map_err(|e| werr(e.to_string()))?
    };
    if !opts.skip_sync {
        tmp.as_file().sync_all().map_err(|e| werr(e.to_string()))?;
    }
    let mut external_bytes = 0;
    if let Some((data_tmp, target)) = data_file {
        external_bytes = data_tmp
            .as_file()
            .metadata()
            .map_err(|e| werr(e.to_string()))?
            .len();
        data_tmp
            .persist(&target)
            .map_err(|e| werr(format!("cannot move the data file into place: {e}")))?;
    }
    tmp.persist(path)
        .map_err(|e| werr(format!("cannot move the model into place: {e}")))?;
    Ok(Written {
        model_bytes: written,
        external_bytes,
    })
}

/// Writes `bytes` to `path` atomically — a temporary file in the same
/// folder, synced, then renamed into place — so `path` never holds a
/// partial file. For reports and dumps; models go through [`write_proto`].
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = folder_of(path);
    let mut tmp = temp_builder(path, ".tmp").tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary-file builder whose file ends up with the mode the output
/// should have: an existing file's own, else what a plain `File::create`
/// gives (0666 less the umask) — not the 0600 temporary files get.
fn temp_builder<'a>(path: &Path, suffix: &'a str) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(".npuopt-").suffix(suffix);
    match std::fs::metadata(path) {
        Ok(meta) => {
            b.permissions(meta.permissions());
        }
        Err(_) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                b.permissions(std::fs::Permissions::from_mode(0o666));
            }
        }
    }
    b
}

/// Moves every tensor of at least `min_bytes` into a temporary side file,
/// 64-byte aligned, returning that file (renamed into place by the caller).
fn move_tensors_out(
    m: &mut ModelProto,
    ext: &ExternalData,
    dir: &Path,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut tmp = temp_builder(&dir.join(&ext.location), ".data.tmp").tempfile_in(dir)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let mut offset = 0u64;
    let mut flushed_to_disk = 0u64;
    let graph = m.graph.as_mut().expect("graph");
    for t in graph.initializer.iter_mut() {
        let Some(raw) = t.raw_data.take() else {
            continue;
        };
        if (raw.len() as u64) < ext.min_bytes {
            t.raw_data = Some(raw);
            continue;
        }
        let pad = offset.next_multiple_of(64) - offset;
        w.write_all(&vec![0u8; pad as usize])?;
        offset += pad;
        w.write_all(&raw)?;
        let entry = |k: &str, v: String| StringStringEntryProto {
            key: Some(k.into()),
            value: Some(v),
        };
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = vec![
            entry("location", ext.location.clone()),
            entry("offset", offset.to_string()),
            entry("length", raw.len().to_string()),
        ];
        offset += raw.len() as u64;
        if offset - flushed_to_disk >= WRITE_BEHIND {
            // The side file is synced below: start its writeback as it grows.
            w.flush()?;
            start_writeback(w.get_ref(), flushed_to_disk, offset - flushed_to_disk);
            flushed_to_disk = offset;
        }
    }
    w.flush()?;
    drop(w);
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// A `BufMut` that streams into a file through a fixed buffer, so
/// encoding a model never holds a second copy of it in memory. Large slices
/// (tensor payloads) go straight to the file: on Linux, a slice of the
/// mapped input is copied from the input file by the kernel
/// (`copy_file_range`), so its pages are never mapped into the process.
struct StreamingBuf<'f> {
    w: &'f mut std::fs::File,
    buf: Vec<u8>,
    written: u64,
    error: Option<std::io::Error>,
    /// Start writeback of each finished stretch while the rest is encoded
    /// (the file will be synced): see [`WRITE_BEHIND`].
    write_behind: bool,
    /// Bytes already handed to writeback.
    flushed_to_disk: u64,
}

/// When the output will be synced, every this many bytes written start
/// their writeback (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does
/// not wait), so the disk writes overlap the encoding of the rest and the
/// final fsync waits only for the tail. Without it the fsync of a 45 MB
/// model started all its writes at the end.
const WRITE_BEHIND: u64 = 4 << 20;

/// Slices at least this long bypass the buffer.
const CHUNK: usize = 1 << 16;

impl<'f> StreamingBuf<'f> {
    fn new(w: &'f mut std::fs::File, write_behind: bool) -> Self {
        StreamingBuf {
            w,
            buf: Vec::with_capacity(1 << 20),
            written: 0,
            error: None,
            write_behind,
            flushed_to_disk: 0,
        }
    }

    /// Starts writeback of what reached the file since the last call, once
    /// that is at least [`WRITE_BEHIND`] bytes. `on_file` is the file's
    /// length so far (the buffer not counted).
    fn start_writeback(&mut self, on_file: u64) {
        if self.write_behind && on_file - self.flushed_to_disk >= WRITE_BEHIND {
            start_writeback(self.w, self.flushed_to_disk, on_file - self.flushed_to_disk);
            self.flushed_to_disk = on_file;
        }
    }

    fn flush_buf(&mut self) {
        if self.error.is_none() && !self.buf.is_empty() {
            if let Err(e) = self.w.write_all(&self.buf) {
                self.error = Some(e);
            }
        }
        self.buf.clear();
        // `written` counts the buffer just written: all of it is on file.
        self.start_writeback(self.written);
    }

    fn finish(mut self) -> std::io::Result<u64> {
        self.flush_buf();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.w.flush()?;
        Ok(self.written)
    }

    /// Writes a large slice (the buffer flushed): the part of it the kernel
    /// copies from the input file, then the rest from memory.
    fn write_large(&mut self, src: &[u8]) {
        let copied = copy_from_input(src, self.w);
        if let Err(e) = self.w.write_all(&src[copied..]) {
            self.error = Some(e);
        }
    }
}

/// How much of `src` (from the start) the kernel copied to `out`, when
/// `src` is a slice of a mapped input file; 0 otherwise or where the copy
/// is not supported (the caller writes the rest).
#[cfg(target_os = "linux")]
fn copy_from_input(src: &[u8], out: &std::fs::File) -> usize {
    use std::os::fd::AsRawFd;
    let Some((input, offset)) = crate::mapped::file_range(src) else {
        return 0;
    };
    let mut done = 0usize;
    while done < src.len() {
        let Ok(mut at) = libc::loff_t::try_from(offset + done as u64) else {
            break;
        };
        // SAFETY: both descriptors are open files owned by live values;
        // the kernel reads `input` at `at` and writes at `out`'s position.
        let n = unsafe {
            libc::copy_file_range(
                input.file.as_raw_fd(),
                &mut at,
                out.as_raw_fd(),
                std::ptr::null_mut(),
                src.len() - done,
                0,
            )
        };
        if n <= 0 {
            // Unsupported here, interrupted, or the file shrank: the rest
            // is written from the mapping (which reports a real error).
            break;
        }
        done += n as usize;
    }
    done
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to
/// disk, without waiting. Only a hint: a failure leaves the work to the
/// final fsync, which reports real errors.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: `file` is an open file owned by a live value; the call only
    // schedules writeback of its page-cache pages.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: u64, _: u64) {}

#[cfg(not(target_os = "linux"))]
fn copy_from_input(_: &[u8], _: &std::fs::File) -> usize {
    0
}

unsafe impl BufMut for StreamingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        usize::MAX - self.written as usize
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        let len = self.buf.len() + cnt;
        assert!(len <= self.buf.capacity());
        // SAFETY: the caller initialised `cnt` bytes of the chunk we handed out.
        unsafe { self.buf.set_len(len) };
        self.written += cnt as u64;
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.buf.len() == self.buf.capacity() {
            self.flush_buf();
        }
        UninitSlice::uninit(self.buf.spare_capacity_mut())
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= CHUNK {
            self.flush_buf();
            if self.error.is_none() {
                self.write_large(src);
            }
            // A tensor written straight from the mapped input: its pages
            // are not needed again (re-read from the file if they are).
            crate::mapped::release(src);
            self.written += src.len() as u64;
            self.start_writeback(self.written);
            return;
        }
        let mut src = src;
        while !src.is_empty() {
            if self.buf.len() == self.buf.capacity() {
                self.flush_buf();
            }
            let n = src.len().min(self.buf.capacity() - self.buf.len());
            self.buf.extend_from_slice(&src[..n]);
            self.written += n as u64;
            src = &src[n..];
        }
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        while src.has_remaining() {
            let chunk = src.chunk();
            let n = chunk.len();
            self.put_slice(chunk);
            src.advance(n);
        }
    }
}

/// The folder a file is written in (`.` for a bare file name), where its
/// temporary file and side files go.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
