//! A dense value being computed: dtype, dims and little-endian bytes.

use bytes::Bytes;

use crate::dtype::DType;
use crate::proto::tensor_proto::DataType;
use crate::tensor::Tensor;

/// A constant's data as little-endian bytes of its dtype, elements of a
/// whole number of bytes: its `raw_data`, shared (not copied), or its typed
/// fields encoded. `None` for external, string or sub-byte tensors.
pub fn raw_bytes(t: &Tensor) -> Option<Bytes> {
    if t.is_external() || t.proto().segment.is_some() {
        return None;
    }
    let dt = t.dtype();
    let bits = dt.bits()?;
    if bits % 8 != 0 || dt.known()? == DataType::String {
        return None;
    }
    let n = t.numel()?;
    let want = dt.raw_len(n)? as usize;
    let p = t.proto();
    let bytes: Bytes = if let Some(raw) = &p.raw_data {
        raw.clone()
    } else {
        use DataType::*;
        let typed: Vec<u8> = match dt.known()? {
            Float => p.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Double => p.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Int64 => p.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Uint64 => p.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Uint32 => p
                .uint64_data
                .iter()
                .flat_map(|&v| (v as u32).to_le_bytes())
                .collect(),
            Int32 => p.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Int16 | Uint16 | Float16 | Bfloat16 => p
                .int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
            Int8 | Uint8 | Bool => p.int32_data.iter().map(|&v| v as u8).collect(),
            _ => return None,
        };
        typed.into()
    };
    (bytes.len() == want).then_some(bytes)
}

/// A dense value being computed: dtype, dims and little-endian bytes. The
/// bytes are shared: a constant's value is its tensor's `raw_data` (no copy
/// of a weight to evaluate it), and a Reshape, Squeeze, Unsqueeze or
/// Identity of it shares them too (folding such a chain holds one copy).
#[derive(Clone, Debug, PartialEq)]
pub struct Val {
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub bytes: Bytes,
}

impl Val {
    pub fn of(t: &Tensor) -> Option<Val> {
        Some(Val {
            dtype: t.dtype(),
            dims: t.dims().to_vec(),
            bytes: raw_bytes(t)?,
        })
    }

    pub fn esize(&self) -> usize {
        (self.dtype.bits().unwrap_or(8) / 8) as usize
    }

    pub fn numel(&self) -> usize {
        self.dims.iter().product::<i64>() as usize
    }

    pub fn elem(&self, i: usize) -> &[u8] {
        let e = self.esize();
        &self.bytes[i * e..(i + 1) * e]
    }

    pub fn into_tensor(self) -> Tensor {
        Tensor::from_raw("", self.dtype, &self.dims, self.bytes)
    }

    pub fn from_i64(dims: Vec<i64>, v: &[i64]) -> Val {
        Val {
            dtype: DType::INT64,
            dims,
            bytes: v
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        }
    }

    /// The values of an integer or bool tensor.
    pub fn ints(&self) -> Option<Vec<i64>> {
        use DataType::*;
        let b = &self.bytes;
        Some(match self.dtype.known()? {
            Int64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Int32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Uint32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Int16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Uint16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Int8 => b.iter().map(|&x| x as i8 as i64).collect(),
            Uint8 => b.iter().map(|&x| x as i64).collect(),
            Bool => b.iter().map(|&x| (x != 0) as i64).collect(),
            _ => return None,
        })
    }

    /// Integer values of an int64/int32 tensor (indices, axes, shapes).
    pub fn index_ints(&self) -> Option<Vec<i64>> {
        matches!(self.dtype, DType::INT64 | DType::INT32)
            .then(|| self.ints())
            .flatten()
    }

    pub fn f32s(&self) -> Vec<f32> {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub fn f64s(&self) -> Vec<f64> {
        self.bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Encodes integers in an integer/bool dtype, `None` if one does not fit.
pub fn encode_ints(dt: DType, v: &[i64]) -> Option<Vec<u8>> {
    use DataType::*;
    let fits = |lo: i64, hi: i64| v.iter().all(|&x| x >= lo && x <= hi);
    Some(match dt.known()? {
        Int64 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Int32 if fits(i32::MIN as i64, i32::MAX as i64) => {
            v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect()
        }
        Uint32 if fits(0, u32::MAX as i64) => {
            v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect()
        }
        Int16 if fits(i16::MIN as i64, i16::MAX as i64) => {
            v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect()
        }
        Uint16 if fits(0, u16::MAX as i64) => {
            v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect()
        }
        Int8 if fits(i8::MIN as i64, i8::MAX as i64) => v.iter().map(|&x| x as i8 as u8).collect(),
        Uint8 if fits(0, u8::MAX as i64) => v.iter().map(|&x| x as u8).collect(),
        Bool => v.iter().map(|&x| (x != 0) as u8).collect(),
        _ => return None,
    })
}

pub fn is_int(dt: DType) -> bool {
    use DataType::*;
    matches!(
        dt.known(),
        Some(Int64 | Int32 | Uint32 | Int16 | Uint16 | Int8 | Uint8)
    )
}
