//! Tensor types with symbolic dimensions.

use crate::dtype::DType;
use crate::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::proto::type_proto::Value as TypeValue;
use crate::proto::TypeProto;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(i64),
    /// A named dimension such as `batch`, kept through inference.
    Sym(String),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A dense tensor's element type and, when known, its shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Option<Vec<Dim>>,
}

impl TensorType {
    pub fn new(dtype: DType, dims: &[i64]) -> TensorType {
        TensorType {
            dtype,
            shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        }
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// The shape when every dim is a number.
    pub fn concrete(&self) -> Option<Vec<i64>> {
        self.shape.as_ref()?.iter().map(Dim::known).collect()
    }

    /// Reads a `TypeProto`; only dense tensors have a `TensorType`.
    pub fn from_proto(t: &TypeProto) -> Option<TensorType> {
        let Some(TypeValue::TensorType(tt)) = &t.value else {
            return None;
        };
        let dtype = DType(tt.elem_type.unwrap_or(0));
        let shape = tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) => Dim::Known(*v),
                    Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        });
        Some(TensorType { dtype, shape })
    }

    /// Merges what two sources say: known dims win over symbols and unknowns.
    pub fn merge(&self, other: &TensorType) -> TensorType {
        let shape = match (&self.shape, &other.shape) {
            (Some(a), Some(b)) if a.len() == b.len() => Some(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| match (x, y) {
                        (Dim::Known(_), _) => x.clone(),
                        (_, Dim::Known(_)) => y.clone(),
                        (Dim::Sym(_), _) => x.clone(),
                        _ => y.clone(),
                    })
                    .collect(),
            ),
            (Some(a), _) => Some(a.clone()),
            (None, b) => b.clone(),
        };
        let dtype = if self.dtype.0 != 0 {
            self.dtype
        } else {
            other.dtype
        };
        TensorType { dtype, shape }
    }
}

impl std::fmt::Display for TensorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dtype)?;
        match &self.shape {
            None => f.write_str("[…]"),
            Some(s) => {
                f.write_str("[")?;
                for (i, d) in s.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
        }
    }
}
