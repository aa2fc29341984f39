//! Tensor types with symbolic dimensions.

use crate::dtype::DType;
use crate::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::proto::type_proto::Value as TypeValue;
use crate::proto::TypeProto;
use crate::symbol::{Poly, Sym};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(i64),
    /// A named dimension such as `batch`, or an expression of named ones
    /// (`3*N`, `floor((height + 1)/2)`), kept through inference.
    Sym(Sym),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }

    /// A named symbol.
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Sym::name(name))
    }

    pub fn is_symbolic(&self) -> bool {
        matches!(self, Dim::Sym(_))
    }

    fn poly(&self) -> Option<Poly> {
        match self {
            Dim::Known(v) => Some(Poly::constant(*v)),
            Dim::Sym(s) => Some(s.poly().clone()),
            Dim::Unknown => None,
        }
    }

    fn arith(
        &self,
        o: &Dim,
        known: fn(i64, i64) -> Option<i64>,
        sym: fn(&Poly, &Poly) -> Option<Poly>,
    ) -> Dim {
        if let (Dim::Known(a), Dim::Known(b)) = (self, o) {
            return known(*a, *b).map_or(Dim::Unknown, Dim::Known);
        }
        match (self.poly(), o.poly()) {
            (Some(a), Some(b)) => sym(&a, &b).map_or(Dim::Unknown, Sym::from_poly),
            _ => Dim::Unknown,
        }
    }

    pub fn add(&self, o: &Dim) -> Dim {
        self.arith(o, i64::checked_add, Poly::add)
    }

    pub fn sub(&self, o: &Dim) -> Dim {
        self.arith(o, i64::checked_sub, Poly::sub)
    }

    pub fn mul(&self, o: &Dim) -> Dim {
        // 0 times anything is 0, even an unknown.
        if *self == Dim::Known(0) || *o == Dim::Known(0) {
            return Dim::Known(0);
        }
        self.arith(o, i64::checked_mul, Poly::mul)
    }

    /// `floor(self / d)` for a positive integer `d`.
    pub fn floor_div(&self, d: i64) -> Dim {
        if d < 1 {
            return Dim::Unknown;
        }
        match self {
            Dim::Known(v) => Dim::Known(v.div_euclid(d)),
            Dim::Sym(s) => s.poly().floor_div(d).map_or(Dim::Unknown, Sym::from_poly),
            Dim::Unknown => Dim::Unknown,
        }
    }

    /// `ceil(self / d)` for a positive integer `d`.
    pub fn ceil_div(&self, d: i64) -> Dim {
        self.add(&Dim::Known(d - 1)).floor_div(d)
    }

    /// `self / o` when it divides exactly (a Reshape's −1): numbers that
    /// divide, or a symbolic total over a one-term divisor.
    pub fn div_exact(&self, o: &Dim) -> Dim {
        if let (Dim::Known(a), Dim::Known(b)) = (self, o) {
            return match a.checked_rem(*b) {
                Some(0) => Dim::Known(a / b),
                _ => Dim::Unknown,
            };
        }
        self.arith(o, |_, _| None, Poly::div_exact)
    }

    /// The value with symbols bound by `bind`; `None` for an unknown dim
    /// or an unbound symbol.
    pub fn eval(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            Dim::Sym(s) => s.poly().eval(bind),
            Dim::Unknown => None,
        }
    }

    /// The dim with the symbols `bind` knows replaced by their values.
    pub fn substitute(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Dim {
        match self {
            Dim::Sym(s) => s
                .poly()
                .substitute(bind)
                .map_or(Dim::Unknown, Sym::from_poly),
            d => d.clone(),
        }
    }

    /// True when the dim is certainly ≥ 0 (a number ≥ 0, or an expression
    /// whose coefficients are all positive).
    pub fn is_non_negative(&self) -> bool {
        match self {
            Dim::Known(v) => *v >= 0,
            Dim::Sym(s) => s.poly().is_non_negative(),
            Dim::Unknown => false,
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => write!(f, "{s}"),
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

    /// The shape with symbols bound by `bind`; `None` when a dim is
    /// unknown or a symbol unbound.
    pub fn concrete_with(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Option<Vec<i64>> {
        self.shape.as_ref()?.iter().map(|d| d.eval(bind)).collect()
    }

    /// The named symbols the shape uses, each once, in order.
    pub fn symbols(&self) -> Vec<std::sync::Arc<str>> {
        let mut out = Vec::new();
        for d in self.shape.iter().flatten() {
            if let Dim::Sym(s) = d {
                s.poly().names(&mut out);
            }
        }
        out
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
                    Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::sym(p),
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
