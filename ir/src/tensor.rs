//! Constant tensors (initializers and `Constant` values).
//!
//! A [`Tensor`] wraps the model's own `TensorProto`, so what the passes do not
//! change is written back exactly as it was read, typed fields and all. The
//! payload of `raw_data` is a `bytes::Bytes` slice of the file's buffer:
//! cloning a tensor never copies its data.

use bytes::Bytes;

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::hash::Fnv64;
use crate::proto::tensor_proto::DataType;
use crate::proto::TensorProto;

#[derive(Clone, Debug)]
pub struct Tensor {
    proto: TensorProto,
    /// [`Tensor::count_nonzero`], computed on first use: the cost model
    /// asks it of every weight on every estimate, and a weight's values do
    /// not change while it is shared (a pass makes a new tensor). Cleared by
    /// [`Tensor::proto_mut`].
    nonzero: std::sync::OnceLock<Result<u64, String>>,
}

/// Tensors are equal when their protos are: the cache is not content.
impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.proto == other.proto
    }
}

impl Tensor {
    pub fn from_proto(proto: TensorProto) -> Tensor {
        Tensor {
            proto,
            nonzero: std::sync::OnceLock::new(),
        }
    }

    pub fn proto(&self) -> &TensorProto {
        &self.proto
    }

    pub fn proto_mut(&mut self) -> &mut TensorProto {
        self.nonzero = std::sync::OnceLock::new();
        &mut self.proto
    }

    pub fn into_proto(self) -> TensorProto {
        self.proto
    }

    /// A tensor of `dtype` from little-endian `raw` bytes.
    pub fn from_raw(name: &str, dtype: DType, dims: &[i64], raw: Bytes) -> Tensor {
        Tensor::from_proto(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dtype.0),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        })
    }

    pub fn from_f32(name: &str, dims: &[i64], data: &[f32]) -> Tensor {
        Self::from_f32_as(name, DType::FLOAT, dims, data)
    }

    /// Stores f32 values in `dtype` (f32, f16, bf16 or f64): passes compute in
    /// f32 or better and write back in the model's own precision.
    pub fn from_f32_as(name: &str, dtype: DType, dims: &[i64], data: &[f32]) -> Tensor {
        let raw = raw_from_f32s(dtype, data.len(), data.iter().copied());
        Self::from_raw(name, float_or_f32(dtype), dims, raw)
    }

    /// Stores f64 values in `dtype` (f32, f16, bf16 or f64), rounding once.
    pub fn from_f64_as(name: &str, dtype: DType, dims: &[i64], data: &[f64]) -> Tensor {
        if dtype.known() == Some(DataType::Double) {
            let raw = raw_from_f64s(data.len(), data.iter().copied());
            return Self::from_raw(name, dtype, dims, raw);
        }
        let raw = raw_from_f32s(dtype, data.len(), data.iter().map(|&v| v as f32));
        Self::from_raw(name, float_or_f32(dtype), dims, raw)
    }

    /// A float tensor of the same dtype and dims whose element `i` is
    /// `f(i, x)`, `x` the element widened to f64 as [`Tensor::to_f64`]
    /// reads it, the result rounded once as [`Tensor::from_f64_as`] stores
    /// it — the same bytes as `from_f64_as(name, dtype, dims, &mapped)` —
    /// computed straight into the new tensor's buffer: a weight is read
    /// once and written once, with no f64 copy of it in between.
    pub fn map_f64(
        &self,
        name: &str,
        mut f: impl FnMut(usize, f64) -> f64,
    ) -> Result<Tensor, String> {
        let n = self.numel().ok_or("dims overflow")? as usize;
        self.map_f64_rows(name, n.max(1), |_, i, x| f(i, x))
    }

    /// [`Tensor::map_f64`] with the elements taken as rows of `row_len`:
    /// element `r·row_len + c` becomes `f(r, c, x)`. The passes scale a
    /// weight per output channel (a row) or per column; counting rows and
    /// columns as the loop goes costs nothing, where dividing the flat
    /// index on every element was most of a BN fold's time.
    pub fn map_f64_rows(
        &self,
        name: &str,
        row_len: usize,
        mut f: impl FnMut(usize, usize, f64) -> f64,
    ) -> Result<Tensor, String> {
        let dtype = self.dtype();
        let n = self.numel().ok_or("dims overflow")? as usize;
        let row_len = row_len.max(1);
        let view = self.float_view()?;
        if view.len() != n {
            return Err(format!("{} values for dims {:?}", view.len(), self.dims()));
        }
        let mut out = F64Sink::new(dtype, n);
        let mut row = [0f64; 256];
        // A weight mapped from the input file has its pages released as
        // they are consumed, a step at a time: the fold of a large weight
        // held all of the old one's pages beside the new one until the
        // pass replaced it (resnet18_fp16's peak was one 4.7 MB weight
        // over the steady state). Safe for a weight read again (see
        // `mapped::release`); a no-op for one not mapped.
        let raw = view.raw();
        let mut released = 0;
        for r in 0..n.div_ceil(row_len) {
            let (start, end) = (r * row_len, ((r + 1) * row_len).min(n));
            let mut c = 0;
            while start + c < end {
                let len = (end - start - c).min(row.len());
                view.read(start + c, &mut row[..len]);
                for (k, v) in row[..len].iter_mut().enumerate() {
                    *v = f(r, c + k, *v);
                }
                out.extend(&row[..len]);
                c += len;
            }
            if let Some(raw) = raw {
                let done = end * (raw.len() / n);
                if done - released >= RELEASE_STEP {
                    // From a page back: the page the last step ended in.
                    crate::mapped::release(&raw[released.saturating_sub(4096)..done]);
                    released = done;
                }
            }
        }
        Ok(out.finish(name, self.dims()))
    }

    /// The values of a float tensor, one at a time, as [`Tensor::to_f64`]
    /// reads them, without a copy when they are raw little-endian data
    /// (typed fields are read into f64 first). Err for other dtypes.
    pub fn float_view(&self) -> Result<FloatView<'_>, String> {
        let dtype = self.dtype();
        if !dtype.is_float() {
            return Err(format!("{dtype} is not a float type"));
        }
        let n = self.numel().ok_or("dims overflow")? as usize;
        let raw = self.proto.raw_data.as_deref();
        Ok(match (raw, dtype.known()) {
            (Some(r), Some(DataType::Float)) if r.len() == n * 4 => FloatView::F32(r),
            (Some(r), Some(DataType::Float16)) if r.len() == n * 2 => FloatView::F16(r),
            (Some(r), Some(DataType::Bfloat16)) if r.len() == n * 2 => FloatView::Bf16(r),
            (Some(r), Some(DataType::Double)) if r.len() == n * 8 => FloatView::F64(r),
            _ => FloatView::Owned(self.to_f64()?),
        })
    }

    /// The values as f64: exact for f64 tensors, widened for the others.
    pub fn to_f64(&self) -> Result<Vec<f64>, String> {
        let p = &self.proto;
        if self.dtype().known() == Some(DataType::Double) {
            return Ok(match &p.raw_data {
                Some(raw) => chunks::<8>(raw).map(f64::from_le_bytes).collect(),
                None => p.double_data.clone(),
            });
        }
        // f32 widened in one pass, without an f32 copy first.
        if let (Some(raw), Some(DataType::Float)) = (&p.raw_data, self.dtype().known()) {
            return Ok(chunks::<4>(raw)
                .map(|b| f32::from_le_bytes(b) as f64)
                .collect());
        }
        Ok(self.to_f32()?.into_iter().map(f64::from).collect())
    }

    pub fn from_i64(name: &str, dims: &[i64], data: &[i64]) -> Tensor {
        let mut raw = Vec::with_capacity(data.len() * 8);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        Self::from_raw(name, DType::INT64, dims, Bytes::from(raw))
    }

    pub fn name(&self) -> &str {
        self.proto.name.as_deref().unwrap_or("")
    }

    pub fn set_name(&mut self, name: &str) {
        // The name is not content: the cached count stays valid.
        self.proto.name = Some(name.to_string());
    }

    pub fn dtype(&self) -> DType {
        DType(self.proto.data_type.unwrap_or(0))
    }

    pub fn dims(&self) -> &[i64] {
        &self.proto.dims
    }

    /// Number of elements; `None` if a dim is negative or the product overflows.
    pub fn numel(&self) -> Option<u64> {
        self.proto.dims.iter().try_fold(1u64, |acc, &d| {
            u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
    }

    /// Bytes of payload, wherever it is stored (for summaries and budgets).
    pub fn byte_size(&self) -> u64 {
        if let Some(raw) = &self.proto.raw_data {
            return raw.len() as u64;
        }
        let n = self.numel().unwrap_or(0);
        self.dtype()
            .raw_len(n)
            .unwrap_or_else(|| self.proto.string_data.iter().map(|s| s.len() as u64).sum())
    }

    pub fn is_external(&self) -> bool {
        self.proto.data_location == Some(crate::proto::tensor_proto::DataLocation::External as i32)
    }

    /// Checks that the payload holds exactly `numel` elements of the dtype.
    /// External tensors are checked when their data is loaded.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.proto;
        if let Some(d) = p.dims.iter().find(|&&d| d < 0) {
            return Err(format!("negative dimension {d} in dims {:?}", p.dims));
        }
        let Some(n) = self.numel() else {
            return Err(format!("dims {:?} overflow", p.dims));
        };
        if self.is_external() || p.segment.is_some() {
            return Ok(());
        }
        let dtype = self.dtype();
        let Some(t) = dtype.known() else {
            return Err(format!("unknown data_type {}", dtype.0));
        };
        if t == DataType::Undefined {
            return Err("data_type is UNDEFINED".into());
        }
        if let Some(raw) = &p.raw_data {
            if t == DataType::String {
                return Err("a string tensor cannot use raw_data".into());
            }
            let want = dtype.raw_len(n).unwrap_or(0);
            if raw.len() as u64 != want {
                return Err(format!(
                    "raw_data has {} bytes, but dims {:?} of {} need {}",
                    raw.len(),
                    p.dims,
                    dtype,
                    want
                ));
            }
            return Ok(());
        }
        let bits = dtype.bits().unwrap_or(8);
        let (field, have, want) = match t {
            DataType::Float => ("float_data", p.float_data.len() as u64, Some(n)),
            DataType::Complex64 => ("float_data", p.float_data.len() as u64, n.checked_mul(2)),
            DataType::Double => ("double_data", p.double_data.len() as u64, Some(n)),
            DataType::Complex128 => ("double_data", p.double_data.len() as u64, n.checked_mul(2)),
            DataType::Int64 => ("int64_data", p.int64_data.len() as u64, Some(n)),
            DataType::Uint32 | DataType::Uint64 => {
                ("uint64_data", p.uint64_data.len() as u64, Some(n))
            }
            DataType::String => ("string_data", p.string_data.len() as u64, Some(n)),
            _ => (
                "int32_data",
                p.int32_data.len() as u64,
                n.checked_mul(bits).map(|b| b.div_ceil(8.max(bits))),
            ),
        };
        // Values (complex: pairs; sub-byte types: bits) past u64 cannot exist.
        let Some(want) = want else {
            return Err(format!("dims {:?} of {dtype} overflow", p.dims));
        };
        if have != want {
            return Err(format!(
                "{field} has {have} values, but dims {:?} of {dtype} need {want}",
                p.dims
            ));
        }
        Ok(())
    }

    /// Calls `f` with every value of a float tensor, widened to f64, in
    /// order, without materialising them: the quantization view reads
    /// every weight of a model, and a copy of a 100 MB weight as `Vec<f64>`
    /// would double the run's peak memory. Returns `Err` for a non-float
    /// tensor or an unreadable payload.
    pub fn for_each_float(&self, mut f: impl FnMut(f64)) -> Result<(), String> {
        let p = &self.proto;
        let t = self
            .dtype()
            .known()
            .filter(|_| self.dtype().is_float())
            .ok_or_else(|| format!("{} is not a float type", self.dtype()))?;
        match (&p.raw_data, t) {
            (Some(raw), DataType::Float) => {
                chunks::<4>(raw).for_each(|b| f(f32::from_le_bytes(b) as f64))
            }
            (Some(raw), DataType::Float16) => {
                chunks::<2>(raw).for_each(|b| f(f16_to_f32(u16::from_le_bytes(b)) as f64))
            }
            (Some(raw), DataType::Bfloat16) => {
                chunks::<2>(raw).for_each(|b| f(bf16_to_f32(u16::from_le_bytes(b)) as f64))
            }
            (Some(raw), DataType::Double) => {
                chunks::<8>(raw).for_each(|b| f(f64::from_le_bytes(b)))
            }
            (None, DataType::Float) => p.float_data.iter().for_each(|&v| f(v as f64)),
            (None, DataType::Double) => p.double_data.iter().for_each(|&v| f(v)),
            _ => self.to_f32()?.into_iter().for_each(|v| f(v as f64)),
        }
        Ok(())
    }

    /// The values as f32, from any float or integer type.
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        let p = &self.proto;
        let dtype = self.dtype();
        let t = dtype
            .known()
            .ok_or_else(|| format!("unknown dtype {}", dtype.0))?;
        if let Some(raw) = &p.raw_data {
            let r = raw.as_ref();
            return Ok(match t {
                DataType::Float => chunks::<4>(r).map(f32::from_le_bytes).collect(),
                DataType::Float16 => chunks::<2>(r)
                    .map(|b| f16_to_f32(u16::from_le_bytes(b)))
                    .collect(),
                DataType::Bfloat16 => chunks::<2>(r)
                    .map(|b| bf16_to_f32(u16::from_le_bytes(b)))
                    .collect(),
                DataType::Double => chunks::<8>(r)
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect(),
                _ => self.to_i64()?.into_iter().map(|v| v as f32).collect(),
            });
        }
        Ok(match t {
            DataType::Float => p.float_data.clone(),
            DataType::Double => p.double_data.iter().map(|&v| v as f32).collect(),
            DataType::Float16 => p.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect(),
            DataType::Bfloat16 => p
                .int32_data
                .iter()
                .map(|&v| bf16_to_f32(v as u16))
                .collect(),
            _ => self.to_i64()?.into_iter().map(|v| v as f32).collect(),
        })
    }

    /// How many elements are not zero (−0.0 counts as zero), read in place
    /// for raw float data — the cost model asks this of every weight on
    /// every estimate, so no copy is made there, and it is counted once per
    /// tensor (cached).
    pub fn count_nonzero(&self) -> Result<u64, String> {
        self.nonzero
            .get_or_init(|| {
                let n = self.count_nonzero_uncached();
                // The input's summary counts every weight before any pass
                // runs: without this, the whole mapped file would stay
                // resident from then on. A page read again (a pass folding
                // this weight, the writer) comes back from the page cache.
                if let Some(raw) = &self.proto.raw_data {
                    crate::mapped::release(raw);
                }
                n
            })
            .clone()
    }

    /// True when [`Tensor::count_nonzero`] has been computed.
    pub fn nonzero_is_known(&self) -> bool {
        self.nonzero.get().is_some()
    }

    fn count_nonzero_uncached(&self) -> Result<u64, String> {
        // The magnitude bits (sign masked off) are zero exactly for ±0.
        use nonzero_magnitudes as nonzero;
        if let (Some(raw), Some(t)) = (&self.proto.raw_data, self.dtype().known()) {
            let r = raw.as_ref();
            match t {
                DataType::Float => {
                    return Ok(nonzero::<4>(r, |b| u32::from_le_bytes(b) << 1 != 0));
                }
                DataType::Float16 | DataType::Bfloat16 => {
                    return Ok(nonzero::<2>(r, |b| u16::from_le_bytes(b) << 1 != 0));
                }
                DataType::Double => {
                    return Ok(nonzero::<8>(r, |b| u64::from_le_bytes(b) << 1 != 0));
                }
                _ => {}
            }
        }
        Ok(self.to_f32()?.iter().filter(|v| **v != 0.0).count() as u64)
    }

    /// The values as i64, from any integer or bool type.
    pub fn to_i64(&self) -> Result<Vec<i64>, String> {
        let p = &self.proto;
        let dtype = self.dtype();
        let t = dtype
            .known()
            .ok_or_else(|| format!("unknown dtype {}", dtype.0))?;
        if let Some(raw) = &p.raw_data {
            let r = raw.as_ref();
            return Ok(match t {
                DataType::Int64 => chunks::<8>(r).map(i64::from_le_bytes).collect(),
                DataType::Uint64 => chunks::<8>(r)
                    .map(|b| u64::from_le_bytes(b) as i64)
                    .collect(),
                DataType::Int32 => chunks::<4>(r)
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect(),
                DataType::Uint32 => chunks::<4>(r)
                    .map(|b| u32::from_le_bytes(b) as i64)
                    .collect(),
                DataType::Int16 => chunks::<2>(r)
                    .map(|b| i16::from_le_bytes(b) as i64)
                    .collect(),
                DataType::Uint16 => chunks::<2>(r)
                    .map(|b| u16::from_le_bytes(b) as i64)
                    .collect(),
                DataType::Int8 => r.iter().map(|&b| b as i8 as i64).collect(),
                DataType::Uint8 | DataType::Bool => r.iter().map(|&b| b as i64).collect(),
                _ => return Err(format!("cannot read {dtype} as integers")),
            });
        }
        Ok(match t {
            DataType::Int64 => p.int64_data.clone(),
            DataType::Uint32 | DataType::Uint64 => {
                p.uint64_data.iter().map(|&v| v as i64).collect()
            }
            DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint16
            | DataType::Uint8
            | DataType::Bool => p.int32_data.iter().map(|&v| v as i64).collect(),
            _ => return Err(format!("cannot read {dtype} as integers")),
        })
    }

    /// A short hash of dtype, dims and values, for dumps and deduplication.
    /// Equal for the same values whether stored in `raw_data` or typed fields
    /// of float32/int64 (the common cases); otherwise hashes the encoding.
    pub fn content_hash(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write(&self.dtype().0.to_le_bytes());
        for d in &self.proto.dims {
            h.write(&d.to_le_bytes());
        }
        let p = &self.proto;
        if let Some(raw) = &p.raw_data {
            h.write(raw);
        } else {
            for v in &p.float_data {
                h.write(&v.to_le_bytes());
            }
            for v in &p.int64_data {
                h.write(&v.to_le_bytes());
            }
            for v in &p.int32_data {
                h.write(&v.to_le_bytes());
            }
            for v in &p.double_data {
                h.write(&v.to_le_bytes());
            }
            for v in &p.uint64_data {
                h.write(&v.to_le_bytes());
            }
            for s in &p.string_data {
                h.write(&(s.len() as u64).to_le_bytes());
                h.write(s);
            }
        }
        h.finish()
    }
}

/// Float types stay; anything else is stored as f32.
fn float_or_f32(dtype: DType) -> DType {
    if dtype.is_float() {
        dtype
    } else {
        DType::FLOAT
    }
}

/// `len` f32 values as little-endian `dtype` (f16 and bf16 rounded to
/// nearest even, f64 widened, anything else f32), written once into a
/// buffer of the exact size.
fn raw_from_f32s(dtype: DType, len: usize, values: impl Iterator<Item = f32>) -> Bytes {
    match dtype.known() {
        Some(DataType::Float16) => put_all::<2>(len, values.map(|v| f32_to_f16(v).to_le_bytes())),
        Some(DataType::Bfloat16) => put_all::<2>(len, values.map(|v| f32_to_bf16(v).to_le_bytes())),
        Some(DataType::Double) => put_all::<8>(len, values.map(|v| (v as f64).to_le_bytes())),
        _ => put_all::<4>(len, values.map(f32::to_le_bytes)),
    }
}

/// `len` f64 values as little-endian f64.
fn raw_from_f64s(len: usize, values: impl Iterator<Item = f64>) -> Bytes {
    put_all::<8>(len, values.map(f64::to_le_bytes))
}

/// The items written into a buffer of `len` items sized once; fewer items
/// leave a shorter buffer, more are dropped (callers give exactly `len`).
/// Writing into the sized buffer, not pushing, lets the loop vectorise.
fn put_all<const N: usize>(len: usize, items: impl Iterator<Item = [u8; N]>) -> Bytes {
    let mut raw = Buffer::zeroed(len * N);
    let mut written = 0;
    for (dst, b) in raw.as_mut_slice()[..len * N].chunks_exact_mut(N).zip(items) {
        store(dst, b);
        written += 1;
    }
    raw.into_bytes(written * N)
}

/// f64 values stored as [`Tensor::from_f64_as`] stores them (f64 kept,
/// any other dtype rounded once to f32 and then to the dtype), pushed in
/// order into a buffer sized once: how a pass writes a computed weight
/// straight into its final form, with no f64 copy of the whole weight.
pub struct F64Sink {
    dtype: DType,
    raw: Buffer,
    len: usize,
    at: usize,
    /// Non-zero values stored so far, counted while each chunk is still
    /// in cache: the finished tensor's [`Tensor::count_nonzero`] is then
    /// known without reading the weight again.
    nonzero: u64,
}

impl F64Sink {
    /// A sink for `len` values of `dtype`.
    pub fn new(dtype: DType, len: usize) -> F64Sink {
        let width = match dtype.known() {
            Some(DataType::Double) => 8,
            Some(DataType::Float16 | DataType::Bfloat16) => 2,
            _ => 4,
        };
        F64Sink {
            dtype,
            raw: Buffer::zeroed(len * width),
            len: len * width,
            at: 0,
            nonzero: 0,
        }
    }

    /// Appends `values`; panics past the length given to [`F64Sink::new`].
    pub fn extend(&mut self, values: &[f64]) {
        /// Stores each value's bytes and counts the non-zero ones (±0 has
        /// all magnitude bits clear) in the same pass.
        fn put<const N: usize>(
            dst: &mut [u8],
            values: &[f64],
            f: impl Fn(f64) -> [u8; N],
            magnitude: impl Fn([u8; N]) -> bool,
        ) -> u64 {
            let mut nonzero = 0;
            for (d, &v) in dst.chunks_exact_mut(N).zip(values) {
                let b = f(v);
                store(d, b);
                nonzero += magnitude(b) as u64;
            }
            nonzero
        }
        let at = self.at;
        let end = at + values.len() * self.width();
        assert!(end <= self.len, "F64Sink overfilled");
        let raw = &mut self.raw.as_mut_slice()[at..end];
        self.nonzero += match self.dtype.known() {
            Some(DataType::Double) => put::<8>(raw, values, f64::to_le_bytes, |b| {
                u64::from_le_bytes(b) << 1 != 0
            }),
            Some(DataType::Float16) => put::<2>(
                raw,
                values,
                |v| f32_to_f16(v as f32).to_le_bytes(),
                |b| u16::from_le_bytes(b) << 1 != 0,
            ),
            Some(DataType::Bfloat16) => put::<2>(
                raw,
                values,
                |v| f32_to_bf16(v as f32).to_le_bytes(),
                |b| u16::from_le_bytes(b) << 1 != 0,
            ),
            _ => put::<4>(
                raw,
                values,
                |v| (v as f32).to_le_bytes(),
                |b| u32::from_le_bytes(b) << 1 != 0,
            ),
        };
        self.at = end;
    }

    fn width(&self) -> usize {
        match self.dtype.known() {
            Some(DataType::Double) => 8,
            Some(DataType::Float16 | DataType::Bfloat16) => 2,
            _ => 4,
        }
    }

    /// The tensor: `dims` must hold exactly the values pushed.
    pub fn finish(self, name: &str, dims: &[i64]) -> Tensor {
        let dtype = if self.dtype.known() == Some(DataType::Double) {
            self.dtype
        } else {
            float_or_f32(self.dtype)
        };
        let complete = self.at == self.len;
        let t = Tensor::from_raw(name, dtype, dims, self.raw.into_bytes(self.at));
        if complete {
            let _ = t.nonzero.set(Ok(self.nonzero));
        }
        t
    }
}

/// How many `N`-byte little-endian floats in `r` are not ±0: the magnitude
/// bits (sign masked off by `magnitude`) are zero exactly for ±0. Summed as
/// 0/1 over exact chunks, which vectorises.
fn nonzero_magnitudes<const N: usize>(r: &[u8], magnitude: impl Fn([u8; N]) -> bool) -> u64 {
    r.chunks_exact(N)
        .map(|c| magnitude(c.try_into().expect("N bytes")) as u64)
        .sum()
}

/// How many bytes of a mapped weight [`Tensor::map_f64_rows`] consumes
/// between two releases of their pages.
const RELEASE_STEP: usize = 1 << 20;

/// A float tensor's values read in place (see [`Tensor::float_view`]).
#[derive(Debug)]
pub enum FloatView<'a> {
    F32(&'a [u8]),
    F16(&'a [u8]),
    Bf16(&'a [u8]),
    F64(&'a [u8]),
    /// Typed storage, read into f64 once.
    Owned(Vec<f64>),
}

impl FloatView<'_> {
    /// The little-endian bytes read, unless the values are owned.
    fn raw(&self) -> Option<&[u8]> {
        match self {
            FloatView::F32(r) | FloatView::F16(r) | FloatView::Bf16(r) | FloatView::F64(r) => {
                Some(r)
            }
            FloatView::Owned(_) => None,
        }
    }

    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            FloatView::F32(r) => r.len() / 4,
            FloatView::F16(r) | FloatView::Bf16(r) => r.len() / 2,
            FloatView::F64(r) => r.len() / 8,
            FloatView::Owned(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All values as f64 ([`Tensor::to_f64`]'s result).
    pub fn into_vec(self) -> Vec<f64> {
        match self {
            FloatView::Owned(v) => v,
            view => {
                let mut v = vec![0.0; view.len()];
                view.read(0, &mut v);
                v
            }
        }
    }

    /// Value `i`, widened to f64 exactly.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        fn at<const N: usize>(r: &[u8], i: usize) -> [u8; N] {
            r[i * N..(i + 1) * N].try_into().expect("N bytes")
        }
        match self {
            FloatView::F32(r) => f32::from_le_bytes(at(r, i)) as f64,
            FloatView::F16(r) => f16_to_f32(u16::from_le_bytes(at(r, i))) as f64,
            FloatView::Bf16(r) => bf16_to_f32(u16::from_le_bytes(at(r, i))) as f64,
            FloatView::F64(r) => f64::from_le_bytes(at(r, i)),
            FloatView::Owned(v) => v[i],
        }
    }

    /// Values `start..start + out.len()` into `out`.
    pub fn read(&self, start: usize, out: &mut [f64]) {
        fn conv<const N: usize>(
            r: &[u8],
            start: usize,
            out: &mut [f64],
            f: impl Fn([u8; N]) -> f64,
        ) {
            let src = &r[start * N..(start + out.len()) * N];
            for (o, b) in out.iter_mut().zip(src.chunks_exact(N)) {
                *o = f(b.try_into().expect("N bytes"));
            }
        }
        match self {
            FloatView::F32(r) => conv::<4>(r, start, out, |b| f32::from_le_bytes(b) as f64),
            FloatView::F16(r) => {
                conv::<2>(r, start, out, |b| f16_to_f32(u16::from_le_bytes(b)) as f64)
            }
            FloatView::Bf16(r) => {
                conv::<2>(r, start, out, |b| bf16_to_f32(u16::from_le_bytes(b)) as f64)
            }
            FloatView::F64(r) => conv::<8>(r, start, out, f64::from_le_bytes),
            FloatView::Owned(v) => out.copy_from_slice(&v[start..start + out.len()]),
        }
    }
}

/// `b` into the `N` bytes of `d`, byte by byte: unlike `copy_from_slice`
/// of a runtime-length chunk (a `memcpy` call per element), this unrolls
/// and vectorises — writing an 11 M-weight f32 tensor took 26 ms the one
/// way and 2.4 ms the other (measured, release build).
#[inline(always)]
#[allow(clippy::manual_memcpy)]
fn store<const N: usize>(d: &mut [u8], b: [u8; N]) {
    for i in 0..N {
        d[i] = b[i];
    }
}

fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // subnormal: normalise the mantissa
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 → f16, rounding to nearest even.
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let rem = man & 0x1fff;
    let mut r = ((e as u32) << 10) | (man >> 13);
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1;
    }
    sign | r as u16
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → bf16, rounding to nearest even.
pub fn f32_to_bf16(v: f32) -> u16 {
    let x = v.to_bits();
    if v.is_nan() {
        return ((x >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((x >> 16) & 1);
    (x.wrapping_add(round) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_nonzero_reads_every_float_layout() {
        let values = [0.0f32, -0.0, 1.5, -2.0, 0.0, 0.25, 3.0];
        for dtype in [DType::FLOAT, DType::FLOAT16, DType::BFLOAT16, DType::DOUBLE] {
            let t = Tensor::from_f32_as("w", dtype, &[7], &values);
            assert_eq!(t.count_nonzero(), Ok(4), "{dtype:?}");
            assert_eq!(
                t.count_nonzero().unwrap(),
                t.to_f32().unwrap().iter().filter(|v| **v != 0.0).count() as u64
            );
        }
        let mut typed = Tensor::from_f32("w", &[3], &[0.0, 2.0, -0.0]);
        assert_eq!(typed.count_nonzero(), Ok(1));
        let p = typed.proto_mut();
        p.float_data = vec![0.0, 2.0, -0.0];
        p.raw_data = None;
        assert_eq!(typed.count_nonzero(), Ok(1));
        // A change through proto_mut clears the cached count.
        typed.proto_mut().float_data = vec![1.0, 2.0, 3.0];
        assert_eq!(typed.count_nonzero(), Ok(3));
    }

    /// Every length (so every tail), and zeros of both signs anywhere.
    #[test]
    fn nonzero_magnitudes_counts_as_one_element_at_a_time_does() {
        let mut state = 0x9E3779B97F4A7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn slow(bytes: &[u8], n: usize) -> u64 {
            let magnitude = u64::MAX >> (65 - 8 * n as u32);
            bytes
                .chunks_exact(n)
                .filter(|b| {
                    let mut a = [0u8; 8];
                    a[..n].copy_from_slice(b);
                    u64::from_le_bytes(a) & magnitude != 0
                })
                .count() as u64
        }
        for n in [2usize, 4, 8] {
            for elems in 0..150usize {
                let mut bytes = Vec::new();
                for _ in 0..elems {
                    let mut e = match next() % 3 {
                        0 => vec![0u8; n],
                        _ => next().to_le_bytes()[..n].to_vec(),
                    };
                    if next() % 2 == 0 {
                        e[n - 1] |= 0x80; // the sign bit
                    }
                    bytes.extend(e);
                }
                // A stray byte past the last whole element is not counted.
                let with_tail = [&bytes[..], &[1u8]].concat();
                let count = |r: &[u8]| match n {
                    2 => nonzero_magnitudes::<2>(r, |b| u16::from_le_bytes(b) << 1 != 0),
                    4 => nonzero_magnitudes::<4>(r, |b| u32::from_le_bytes(b) << 1 != 0),
                    _ => nonzero_magnitudes::<8>(r, |b| u64::from_le_bytes(b) << 1 != 0),
                };
                let got = (count(&bytes), count(&with_tail));
                assert_eq!(got, (slow(&bytes, n), slow(&bytes, n)), "{n}-byte, {elems}");
            }
        }
    }

    #[test]
    fn map_f64_writes_what_from_f64_as_writes() {
        let values = [0.0f32, -0.0, 1.5, -2.0, 1e-8, 0.1, 3.0, 65519.0];
        for dtype in [DType::FLOAT, DType::FLOAT16, DType::BFLOAT16, DType::DOUBLE] {
            let t = Tensor::from_f32_as("w", dtype, &[2, 4], &values);
            let f = |i: usize, x: f64| x * (0.3 + i as f64) - 0.7;
            let want: Vec<f64> = t
                .to_f64()
                .unwrap()
                .into_iter()
                .enumerate()
                .map(|(i, x)| f(i, x))
                .collect();
            let want = Tensor::from_f64_as("v", dtype, &[2, 4], &want);
            let got = t.map_f64("v", f).unwrap();
            assert_eq!(got, want, "{dtype:?}");
            // The count taken while writing is the one read back.
            assert_eq!(got.count_nonzero(), want.count_nonzero(), "{dtype:?}");
            let zeros = t.map_f64("z", |i, x| if i % 3 == 0 { -0.0 * x } else { 0.0 });
            assert_eq!(zeros.unwrap().count_nonzero(), Ok(0), "{dtype:?}");
        }
        // Typed storage takes the general path, to the same result.
        let mut typed = Tensor::from_f32("w", &[3], &[0.5, 2.0, -1.0]);
        typed.proto_mut().float_data = vec![0.5, 2.0, -1.0];
        typed.proto_mut().raw_data = None;
        let want = Tensor::from_f64_as("v", DType::FLOAT, &[3], &[1.0, 4.0, -2.0]);
        assert_eq!(typed.map_f64("v", |_, x| 2.0 * x).unwrap(), want);
    }

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "f16 {h:#x} -> {f}");
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00); // tie -> even
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02); // tie -> even (up)
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // overflow -> inf
    }

    #[test]
    fn bf16_round_trips() {
        for h in [0u16, 0x3f80, 0xbf80, 0x7f7f, 0x0001] {
            assert_eq!(f32_to_bf16(bf16_to_f32(h)), h);
        }
    }

    #[test]
    fn validate_rejects_short_raw_data() {
        let t = Tensor::from_raw("w", DType::FLOAT, &[2, 3], Bytes::from(vec![0u8; 20]));
        let err = t.validate().unwrap_err();
        assert!(err.contains("20 bytes") && err.contains("need 24"), "{err}");
    }

    #[test]
    fn validate_counts_packed_int4() {
        let mut p = TensorProto {
            dims: vec![5],
            data_type: Some(DataType::Int4 as i32),
            raw_data: Some(Bytes::from(vec![0u8; 3])),
            ..Default::default()
        };
        assert!(Tensor::from_proto(p.clone()).validate().is_ok());
        p.raw_data = Some(Bytes::from(vec![0u8; 2]));
        assert!(Tensor::from_proto(p).validate().is_err());
    }
}
