//! ONNX element types: sizes and names.

use crate::proto::tensor_proto::DataType;

/// An ONNX element type, as the `TensorProto.DataType` number. Kept as the
/// raw number so a type from a newer ONNX than ours still round-trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DType(pub i32);

impl DType {
    pub const FLOAT: DType = DType(DataType::Float as i32);
    pub const FLOAT16: DType = DType(DataType::Float16 as i32);
    pub const BFLOAT16: DType = DType(DataType::Bfloat16 as i32);
    pub const DOUBLE: DType = DType(DataType::Double as i32);
    pub const INT64: DType = DType(DataType::Int64 as i32);
    pub const INT32: DType = DType(DataType::Int32 as i32);
    pub const INT8: DType = DType(DataType::Int8 as i32);
    pub const UINT8: DType = DType(DataType::Uint8 as i32);
    pub const BOOL: DType = DType(DataType::Bool as i32);
    pub const STRING: DType = DType(DataType::String as i32);

    pub fn known(self) -> Option<DataType> {
        DataType::try_from(self.0).ok()
    }

    /// Bits one element takes in `raw_data`; `None` for strings, undefined
    /// and unknown types.
    pub fn bits(self) -> Option<u64> {
        use DataType::*;
        Some(match self.known()? {
            Float | Int32 | Uint32 => 32,
            Uint8 | Int8 | Bool | Float8e4m3fn | Float8e4m3fnuz | Float8e5m2 | Float8e5m2fnuz
            | Float8e8m0 => 8,
            Uint16 | Int16 | Float16 | Bfloat16 => 16,
            Int64 | Uint64 | Double | Complex64 => 64,
            Complex128 => 128,
            Uint4 | Int4 | Float4e2m1 => 4,
            Uint2 | Int2 => 2,
            Float6e2m3 | Float6e3m2 => 6,
            String | Undefined => return None,
        })
    }

    /// Bytes `n` elements take in `raw_data` (sub-byte types are packed).
    pub fn raw_len(self, n: u64) -> Option<u64> {
        let bits = self.bits()?;
        n.checked_mul(bits).map(|b| b.div_ceil(8))
    }

    pub fn is_float(self) -> bool {
        matches!(
            self.known(),
            Some(DataType::Float | DataType::Float16 | DataType::Bfloat16 | DataType::Double)
        )
    }

    /// A short lower-case name for dumps: `f32`, `i64`, `f8e4m3fn` …
    pub fn short_name(self) -> String {
        use DataType::*;
        let Some(t) = self.known() else {
            return format!("dtype{}", self.0);
        };
        match t {
            Undefined => "undef",
            Float => "f32",
            Uint8 => "u8",
            Int8 => "i8",
            Uint16 => "u16",
            Int16 => "i16",
            Int32 => "i32",
            Int64 => "i64",
            String => "str",
            Bool => "bool",
            Float16 => "f16",
            Double => "f64",
            Uint32 => "u32",
            Uint64 => "u64",
            Complex64 => "c64",
            Complex128 => "c128",
            Bfloat16 => "bf16",
            Float8e4m3fn => "f8e4m3fn",
            Float8e4m3fnuz => "f8e4m3fnuz",
            Float8e5m2 => "f8e5m2",
            Float8e5m2fnuz => "f8e5m2fnuz",
            Uint4 => "u4",
            Int4 => "i4",
            Float4e2m1 => "f4e2m1",
            Float8e8m0 => "f8e8m0",
            Uint2 => "u2",
            Int2 => "i2",
            Float6e2m3 => "f6e2m3",
            Float6e3m2 => "f6e3m2",
        }
        .to_string()
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short_name())
    }
}
