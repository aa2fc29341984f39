//! Cast between f32, f64, bool and the integer types.
//!
//! float→int truncates toward zero; a NaN, infinite or out-of-range value
//! (whose conversion is undefined in C++ runtimes) and int narrowing that
//! does not fit give `None`.

use super::value::{encode_ints, is_int};
use super::Val;
use crate::dtype::DType;

pub fn cast(x: &Val, to: DType) -> Option<Val> {
    if to == x.dtype {
        return Some(x.clone());
    }
    let bytes = match (x.dtype, to) {
        (DType::FLOAT | DType::DOUBLE, _) => {
            let v: Vec<f64> = if x.dtype == DType::FLOAT {
                x.f32s().into_iter().map(f64::from).collect()
            } else {
                x.f64s()
            };
            match to {
                DType::FLOAT => v.iter().flat_map(|&f| (f as f32).to_le_bytes()).collect(),
                DType::DOUBLE => v.iter().flat_map(|f| f.to_le_bytes()).collect(),
                DType::BOOL => {
                    if v.iter().any(|f| f.is_nan()) {
                        return None;
                    }
                    v.iter().map(|&f| (f != 0.0) as u8).collect()
                }
                t if is_int(t) => {
                    // Truncation toward zero; out-of-range is undefined in C++.
                    let ints: Vec<i64> = v
                        .iter()
                        .map(|&f| {
                            let t = f.trunc();
                            // ±2^63: i64's range, exactly representable.
                            let lim = 2f64.powi(63);
                            (-lim..lim).contains(&t).then_some(t as i64)
                        })
                        .collect::<Option<_>>()?;
                    encode_ints(t, &ints)?
                }
                _ => return None,
            }
        }
        (from, _) if is_int(from) || from == DType::BOOL => {
            let v = x.ints()?;
            match to {
                DType::FLOAT => v.iter().flat_map(|&i| (i as f32).to_le_bytes()).collect(),
                DType::DOUBLE => v.iter().flat_map(|&i| (i as f64).to_le_bytes()).collect(),
                t if is_int(t) || t == DType::BOOL => encode_ints(t, &v)?,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Val {
        dtype: to,
        dims: x.dims.clone(),
        bytes: bytes.into(),
    })
}
