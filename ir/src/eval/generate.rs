//! Ops that make a tensor from scalars: Range and ConstantOfShape.

use super::value::{encode_ints, is_int};
use super::Val;
use crate::dtype::DType;

pub fn range(start: &Val, limit: &Val, delta: &Val) -> Option<Val> {
    let dt = start.dtype;
    if limit.dtype != dt || delta.dtype != dt {
        return None;
    }
    if start.numel() != 1 || limit.numel() != 1 || delta.numel() != 1 {
        return None;
    }
    if is_int(dt) {
        let (s, l, d) = (start.ints()?[0], limit.ints()?[0], delta.ints()?[0]);
        if d == 0 {
            return None;
        }
        let diff = l.checked_sub(s)?;
        let mut n = diff / d;
        if diff % d != 0 && ((diff > 0) == (d > 0)) {
            n += 1;
        }
        let n = n.max(0);
        if n > (16 << 20) {
            return None;
        }
        let vals: Vec<i64> = (0..n)
            .map(|i| s.checked_add(i.checked_mul(d)?))
            .collect::<Option<_>>()?;
        return Some(Val {
            dtype: dt,
            dims: vec![n],
            bytes: encode_ints(dt, &vals)?.into(),
        });
    }
    let (s, l, d, exact_limit) = match dt {
        DType::FLOAT => (
            start.f32s()[0] as f64,
            limit.f32s()[0] as f64,
            delta.f32s()[0] as f64,
            (1u64 << 24) as f64,
        ),
        DType::DOUBLE => (
            start.f64s()[0],
            limit.f64s()[0],
            delta.f64s()[0],
            (1u64 << 53) as f64,
        ),
        _ => return None,
    };
    if !(s.is_finite() && l.is_finite() && d.is_finite()) || d == 0.0 {
        return None;
    }
    if s.fract() != 0.0 || d.fract() != 0.0 {
        return None;
    }
    let q = (l - s) / d;
    let n = q.ceil().max(0.0);
    if dt == DType::FLOAT {
        // The count as a runtime computes it, in f32.
        let (s32, l32, d32) = (s as f32, l as f32, d as f32);
        let n32 = ((l32 - s32) / d32).ceil().max(0.0) as f64;
        if n32 != n {
            return None;
        }
    }
    if n > (16u64 << 20) as f64 || s.abs() + n * d.abs() > exact_limit {
        return None;
    }
    let n = n as i64;
    let vals: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
    let bytes = if dt == DType::FLOAT {
        vals.iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect()
    } else {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    Some(Val {
        dtype: dt,
        dims: vec![n],
        bytes,
    })
}

/// `ConstantOfShape`: a tensor of `shape` (1-D int64) filled with `fill`
/// (a one-element tensor; `None`: f32 zero). Declines above 64 MiB.
pub fn constant_of_shape(shape: &Val, fill: Option<Val>) -> Option<Val> {
    if shape.dtype != DType::INT64 || shape.dims.len() != 1 {
        return None;
    }
    let dims = shape.ints()?;
    if dims.iter().any(|&d| d < 0) {
        return None;
    }
    let fill = fill.unwrap_or_else(|| Val {
        dtype: DType::FLOAT,
        dims: vec![1],
        bytes: 0f32.to_le_bytes().to_vec().into(),
    });
    if fill.numel() != 1 {
        return None;
    }
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))?;
    // Refuse absurd sizes before allocating.
    if count.checked_mul(fill.bytes.len())? > 64 << 20 {
        return None;
    }
    Some(Val {
        dtype: fill.dtype,
        dims,
        bytes: fill.bytes.repeat(count).into(),
    })
}
