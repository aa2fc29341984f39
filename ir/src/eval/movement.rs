//! Data movement: Gather, GatherND, Expand, Tile, Unsqueeze, Squeeze, Concat, Reshape, Transpose,
//! Slice. Dtype-agnostic: elements are copied as bytes.

use super::Val;

pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

pub fn strides(dims: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as usize;
    }
    s
}

pub fn gather(data: &Val, indices: &Val, axis: i64) -> Option<Val> {
    let axis = norm_axis(axis, data.dims.len())?;
    let idx = indices.index_ints()?;
    let dim = data.dims[axis];
    let idx: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            (0..dim).contains(&j).then_some(j as usize)
        })
        .collect::<Option<_>>()?;
    let outer: usize = data.dims[..axis].iter().product::<i64>() as usize;
    let inner: usize = data.dims[axis + 1..].iter().product::<i64>() as usize * data.esize();
    let mut bytes = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in &idx {
            let start = (o * dim as usize + j) * inner;
            bytes.extend_from_slice(&data.bytes[start..start + inner]);
        }
    }
    let mut dims = data.dims[..axis].to_vec();
    dims.extend_from_slice(&indices.dims);
    dims.extend_from_slice(&data.dims[axis + 1..]);
    Some(Val {
        dtype: data.dtype,
        dims,
        bytes: bytes.into(),
    })
}

/// `Expand`: `x` broadcast with `shape` in both directions (a 1 in `shape`
/// keeps `x`'s dim), elements copied as bytes. Declines above 64 MiB, as
/// `ConstantOfShape` does.
pub fn expand(x: &Val, shape: &[i64]) -> Option<Val> {
    if shape.iter().any(|&d| d < 0) {
        return None;
    }
    let dims = super::broadcast_dims(&x.dims, shape)?;
    let e = x.esize();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))?;
    // Refuse absurd sizes before allocating.
    if count.checked_mul(e)? > 64 << 20 {
        return None;
    }
    let idx = super::arith::broadcast_index(&dims, &x.dims);
    let mut bytes = Vec::with_capacity(idx.len() * e);
    for i in idx {
        bytes.extend_from_slice(&x.bytes[i * e..(i + 1) * e]);
    }
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes: bytes.into(),
    })
}

/// `Tile`: `x` repeated `repeats[i]` times along each axis `i` (one repeat
/// per axis, none negative). Declines above 64 MiB.
pub fn tile(x: &Val, repeats: &[i64]) -> Option<Val> {
    if repeats.len() != x.dims.len() || repeats.iter().any(|&r| r < 0) {
        return None;
    }
    let e = x.esize();
    let count = x
        .dims
        .iter()
        .zip(repeats)
        .try_fold(1usize, |acc, (&d, &r)| {
            acc.checked_mul((d as usize).checked_mul(r as usize)?)
        })?;
    if count.checked_mul(e)? > 64 << 20 {
        return None;
    }
    // Innermost axis first: each step repeats every block of the axes
    // already tiled.
    let mut dims = x.dims.clone();
    let mut bytes = x.bytes.to_vec();
    for axis in (0..dims.len()).rev() {
        let r = repeats[axis] as usize;
        let block = dims[axis..].iter().product::<i64>() as usize * e;
        let mut out = Vec::with_capacity(bytes.len() * r);
        if block > 0 {
            for chunk in bytes.chunks_exact(block) {
                for _ in 0..r {
                    out.extend_from_slice(chunk);
                }
            }
        }
        bytes = out;
        dims[axis] *= repeats[axis];
    }
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes: bytes.into(),
    })
}

/// `GatherND` with `batch_dims` 0: each index tuple (the last axis of
/// `indices`, negative entries wrap once) picks a slice of `data`. An
/// out-of-range index declines.
pub fn gather_nd(data: &Val, indices: &Val) -> Option<Val> {
    let idx = indices.index_ints()?;
    let k = *indices.dims.last()? as usize;
    if k == 0 || k > data.dims.len() {
        return None;
    }
    let s = strides(&data.dims);
    let e = data.esize();
    let slice = s[k - 1] * e;
    let mut bytes = Vec::with_capacity(idx.len() / k * slice);
    for tuple in idx.chunks_exact(k) {
        let mut start = 0usize;
        for (axis, &i) in tuple.iter().enumerate() {
            let dim = data.dims[axis];
            let j = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&j) {
                return None;
            }
            start += j as usize * s[axis];
        }
        bytes.extend_from_slice(&data.bytes[start * e..start * e + slice]);
    }
    let mut dims = indices.dims[..indices.dims.len() - 1].to_vec();
    dims.extend_from_slice(&data.dims[k..]);
    Some(Val {
        dtype: data.dtype,
        dims,
        bytes: bytes.into(),
    })
}

pub fn unsqueeze(x: &Val, axes: &[i64]) -> Option<Val> {
    let out_rank = x.dims.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, out_rank))
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let mut rest = x.dims.iter();
    let dims = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                Some(1)
            } else {
                rest.next().copied()
            }
        })
        .collect::<Option<Vec<i64>>>()?;
    Some(Val { dims, ..x.clone() })
}

pub fn squeeze(x: &Val, axes: Option<&[i64]>) -> Option<Val> {
    let r = x.dims.len();
    let drop: Vec<usize> = match axes {
        None => (0..r).filter(|&i| x.dims[i] == 1).collect(),
        Some(axes) => {
            let v: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<Option<_>>()?;
            if v.iter().any(|&i| x.dims[i] != 1) {
                return None;
            }
            v
        }
    };
    let dims = (0..r)
        .filter(|i| !drop.contains(i))
        .map(|i| x.dims[i])
        .collect();
    Some(Val { dims, ..x.clone() })
}

pub fn concat(vals: &[&Val], axis: i64) -> Option<Val> {
    let first = vals.first()?;
    let r = first.dims.len();
    let axis = norm_axis(axis, r)?;
    for v in vals {
        if v.dtype != first.dtype || v.dims.len() != r {
            return None;
        }
        if (0..r).any(|i| i != axis && v.dims[i] != first.dims[i]) {
            return None;
        }
    }
    let outer: usize = first.dims[..axis].iter().product::<i64>() as usize;
    let mut bytes = Vec::new();
    for o in 0..outer {
        for v in vals {
            let chunk = v.dims[axis..].iter().product::<i64>() as usize * v.esize();
            bytes.extend_from_slice(&v.bytes[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut dims = first.dims.clone();
    dims[axis] = vals.iter().map(|v| v.dims[axis]).sum();
    Some(Val {
        dtype: first.dtype,
        dims,
        bytes: bytes.into(),
    })
}

pub fn reshape(x: &Val, shape: &[i64], allowzero: bool) -> Option<Val> {
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            0 if !allowzero => dims.push(*x.dims.get(i)?),
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            s if s >= 0 => dims.push(s),
            _ => return None,
        }
    }
    let known: i64 = dims.iter().product();
    let total = x.numel() as i64;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return None;
        }
        dims[i] = total / known;
    } else if known != total {
        return None;
    }
    Some(Val { dims, ..x.clone() })
}

pub fn transpose(x: &Val, perm: Option<Vec<i64>>) -> Option<Val> {
    let r = x.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p
            .iter()
            .map(|&a| usize::try_from(a).ok().filter(|&a| a < r))
            .collect::<Option<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return None;
        }
    }
    if perm.len() != r {
        return None;
    }
    let dims: Vec<i64> = perm.iter().map(|&p| x.dims[p]).collect();
    let in_strides = strides(&x.dims);
    let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let src: Vec<i64> = src.iter().map(|&s| s as i64).collect();
    Some(Val {
        dtype: x.dtype,
        bytes: gather_strided(x, &dims, &src, 0).into(),
        dims,
    })
}

/// The elements of `x` for every position of an output of `dims`, where a
/// step along output axis i moves `step[i]` (signed) elements in the source
/// from element `base`: copied straight into a buffer of the exact size,
/// the last axis as a run of fixed-size element copies. (A `usize` offset
/// per element and a `memcpy` call per element made folding the transposed
/// weights of a transformer most of its run.)
pub(crate) fn gather_strided(x: &Val, dims: &[i64], step: &[i64], base: i64) -> Vec<u8> {
    let e = x.esize();
    let n = dims.iter().map(|&d| d.max(0) as usize).product::<usize>();
    let mut out = vec![0u8; n * e];
    if n == 0 {
        return out;
    }
    let Some((&last, outer)) = dims.split_last() else {
        out.copy_from_slice(x.elem(base as usize));
        return out;
    };
    let (run, run_step) = (last as usize, step[dims.len() - 1]);
    let mut at = vec![0i64; outer.len()];
    let mut start = base;
    for row in out.chunks_exact_mut(run * e) {
        match e {
            1 => copy_run::<1>(&x.bytes, row, start, run_step),
            2 => copy_run::<2>(&x.bytes, row, start, run_step),
            4 => copy_run::<4>(&x.bytes, row, start, run_step),
            8 => copy_run::<8>(&x.bytes, row, start, run_step),
            _ => {
                for (k, dst) in row.chunks_exact_mut(e).enumerate() {
                    dst.copy_from_slice(x.elem((start + k as i64 * run_step) as usize));
                }
            }
        }
        // The next row: an odometer over the outer axes, last fastest.
        for ax in (0..outer.len()).rev() {
            at[ax] += 1;
            start += step[ax];
            if at[ax] < outer[ax] {
                break;
            }
            start -= step[ax] * at[ax];
            at[ax] = 0;
        }
    }
    out
}

/// `dst`'s elements (of `E` bytes) from `src` at element `start`, then every
/// `step` elements. Byte by byte, as `tensor.rs`'s `store` (a
/// `copy_from_slice` per element was a `memcpy` call per element there).
#[allow(clippy::manual_memcpy)]
fn copy_run<const E: usize>(src: &[u8], dst: &mut [u8], start: i64, step: i64) {
    for (k, d) in dst.chunks_exact_mut(E).enumerate() {
        let o = (start + k as i64 * step) as usize * E;
        let s = &src[o..o + E];
        for i in 0..E {
            d[i] = s[i];
        }
    }
}

/// Flat source offsets for every element of an output of `dims`, where a
/// step along output axis i moves `step[i]` (signed) elements in the source.
pub fn gather_offsets(dims: &[i64], step: &[usize], base: usize) -> Vec<usize> {
    gather_offsets_signed(
        dims,
        &step.iter().map(|&s| s as i64).collect::<Vec<_>>(),
        base as i64,
    )
}

pub fn gather_offsets_signed(dims: &[i64], step: &[i64], base: i64) -> Vec<usize> {
    let mut out = vec![base];
    for (d, s) in dims.iter().zip(step) {
        let mut next = Vec::with_capacity(out.len() * *d as usize);
        for &o in &out {
            for i in 0..*d {
                next.push(o + i * s);
            }
        }
        out = next;
    }
    out.into_iter().map(|o| o as usize).collect()
}

pub fn slice(
    x: &Val,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Option<Val> {
    let r = x.dims.len();
    if starts.len() != ends.len() {
        return None;
    }
    let axes: Vec<usize> = match axes {
        Some(a) if a.len() == starts.len() => {
            a.iter().map(|&a| norm_axis(a, r)).collect::<Option<_>>()?
        }
        Some(_) => return None,
        None => (0..starts.len()).collect(),
    };
    if axes.iter().any(|&a| a >= r) {
        return None;
    }
    let steps: Vec<i64> = match steps {
        Some(s) if s.len() == starts.len() => s.to_vec(),
        Some(_) => return None,
        None => vec![1; starts.len()],
    };
    let mut start_of = vec![0i64; r];
    let mut step_of = vec![1i64; r];
    let mut dims = x.dims.clone();
    let mut seen = vec![false; r];
    for k in 0..axes.len() {
        let ax = axes[k];
        if std::mem::replace(&mut seen[ax], true) {
            return None;
        }
        let d = x.dims[ax];
        let step = steps[k];
        if step == 0 || step == i64::MIN || d == 0 {
            return None;
        }
        let (mut s, mut e) = (starts[k], ends[k]);
        if s < 0 {
            s = s.saturating_add(d);
        }
        if e < 0 {
            e = e.saturating_add(d);
        }
        let count = if step > 0 {
            let s = s.clamp(0, d);
            let e = e.clamp(0, d);
            start_of[ax] = s;
            if e > s {
                (e - s - 1) / step + 1
            } else {
                0
            }
        } else {
            let s = s.clamp(0, d - 1);
            let e = e.clamp(-1, d - 1);
            start_of[ax] = s;
            if s > e {
                (s - e - 1) / (-step) + 1
            } else {
                0
            }
        };
        step_of[ax] = step;
        dims[ax] = count;
    }
    let in_strides = strides(&x.dims);
    let base: i64 = (0..r)
        .map(|i| {
            if dims[i] > 0 {
                start_of[i] * in_strides[i] as i64
            } else {
                0
            }
        })
        .sum();
    let step: Vec<i64> = (0..r).map(|i| step_of[i] * in_strides[i] as i64).collect();
    let bytes = if dims.contains(&0) {
        Vec::new()
    } else {
        gather_strided(x, &dims, &step, base)
    };
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes: bytes.into(),
    })
}
