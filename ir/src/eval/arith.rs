//! Element-wise arithmetic with numpy broadcasting.

use super::movement::{gather_offsets, strides};
use super::Val;
use crate::dtype::DType;

/// Numpy (multidirectional) broadcasting of two shapes.
pub fn broadcast_dims(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (x, y) {
                _ if x == y => Some(x),
                (1, _) => Some(y),
                (_, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// For each element of `out`, the flat index into an input of `dims`
/// broadcast to it.
pub fn broadcast_index(out: &[i64], dims: &[i64]) -> Vec<usize> {
    let r = out.len();
    let s = strides(dims);
    let step: Vec<usize> = (0..r)
        .map(|i| {
            if i + dims.len() < r {
                0
            } else {
                let j = i + dims.len() - r;
                if dims[j] == 1 {
                    0
                } else {
                    s[j]
                }
            }
        })
        .collect();
    gather_offsets(out, &step, 0)
}

/// The broadcast shape of two inputs of one dtype and, for each of its
/// elements, the flat index into each input (`None`: the dtypes differ or
/// the shapes do not broadcast).
pub(crate) fn broadcast_pairs(x: &Val, y: &Val) -> Option<(Vec<i64>, Vec<usize>, Vec<usize>)> {
    if x.dtype != y.dtype {
        return None;
    }
    let dims = broadcast_dims(&x.dims, &y.dims)?;
    let xi = broadcast_index(&dims, &x.dims);
    let yi = broadcast_index(&dims, &y.dims);
    Some((dims, xi, yi))
}

/// `Add`, `Sub`, `Mul`, `Div`, and `Mod` (`"Mod"`: the integer remainder
/// takes the divisor's sign, as Python's `%`; `"FMod"`, Mod with `fmod`:
/// the dividend's, as C's `fmod`, exact in IEEE floats — the spec requires
/// it for floats, so a float `"Mod"` declines). Integer division or
/// remainder by zero and overflow decline.
pub fn binary(op: &str, x: &Val, y: &Val) -> Option<Val> {
    let (dims, xi, yi) = broadcast_pairs(x, y)?;
    let pairs = xi.iter().zip(&yi);
    let bytes: Vec<u8> = match x.dtype {
        DType::FLOAT => {
            let (a, b) = (x.f32s(), y.f32s());
            let f: fn(f32, f32) -> f32 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                "FMod" => |p, q| p % q,
                "Mod" => return None,
                _ => |p, q| p / q,
            };
            pairs
                .flat_map(|(&i, &j)| f(a[i], b[j]).to_le_bytes())
                .collect()
        }
        DType::DOUBLE => {
            let (a, b) = (x.f64s(), y.f64s());
            let f: fn(f64, f64) -> f64 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                "FMod" => |p, q| p % q,
                "Mod" => return None,
                _ => |p, q| p / q,
            };
            pairs
                .flat_map(|(&i, &j)| f(a[i], b[j]).to_le_bytes())
                .collect()
        }
        DType::INT64 => {
            let (a, b) = (x.ints()?, y.ints()?);
            // Rust's checked_div and checked_rem truncate toward zero, as
            // C++ does (and decline a zero divisor and i64::MIN by -1).
            let f: fn(i64, i64) -> Option<i64> = match op {
                "Add" => i64::checked_add,
                "Sub" => i64::checked_sub,
                "Mul" => i64::checked_mul,
                "FMod" => i64::checked_rem,
                "Mod" => |p, q| {
                    let r = p.checked_rem(q)?;
                    Some(if r != 0 && (r < 0) != (q < 0) {
                        r + q
                    } else {
                        r
                    })
                },
                _ => i64::checked_div,
            };
            let v: Vec<i64> = pairs.map(|(&i, &j)| f(a[i], b[j])).collect::<Option<_>>()?;
            v.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => return None,
    };
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes: bytes.into(),
    })
}

pub fn unary(op: &str, x: &Val) -> Option<Val> {
    let bytes: Vec<u8> = match x.dtype {
        DType::FLOAT => {
            let f: fn(f32) -> f32 = match op {
                "Neg" => |p| -p,
                "Sqrt" => f32::sqrt,
                "Floor" => f32::floor,
                "Ceil" => f32::ceil,
                "Abs" => f32::abs,
                _ => |p| 1.0 / p,
            };
            x.f32s()
                .into_iter()
                .flat_map(|v| f(v).to_le_bytes())
                .collect()
        }
        DType::DOUBLE => {
            let f: fn(f64) -> f64 = match op {
                "Neg" => |p| -p,
                "Sqrt" => f64::sqrt,
                "Floor" => f64::floor,
                "Ceil" => f64::ceil,
                "Abs" => f64::abs,
                _ => |p| 1.0 / p,
            };
            x.f64s()
                .into_iter()
                .flat_map(|v| f(v).to_le_bytes())
                .collect()
        }
        DType::INT64 if matches!(op, "Neg" | "Abs" | "Floor" | "Ceil") => {
            let f: fn(i64) -> Option<i64> = match op {
                "Neg" => i64::checked_neg,
                "Abs" => i64::checked_abs,
                _ => Some,
            };
            let v: Vec<i64> = x.ints()?.into_iter().map(f).collect::<Option<_>>()?;
            v.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => return None,
    };
    Some(Val {
        dtype: x.dtype,
        dims: x.dims.clone(),
        bytes: bytes.into(),
    })
}
