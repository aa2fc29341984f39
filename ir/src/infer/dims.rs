//! Dim arithmetic the rules share: axes, broadcasting, products, windows.

use crate::op::AutoPad;
use crate::shape::Dim;

/// `axis` (negative counts from the end) as an index into `rank` dims.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Several axes, each normalised; `None` if one is out of range or repeated.
pub fn norm_axes(axes: &[i64], rank: usize) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Option<_>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(out)
}

/// Numpy (multidirectional) broadcasting; `None` when two known dims
/// disagree. A known dim other than 1 wins over a symbol or an unknown
/// (they must equal it or be 1); two different symbols give an unknown.
pub fn broadcast(shapes: &[&[Dim]]) -> Option<Vec<Dim>> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let mut d = Dim::Known(1);
        for s in shapes {
            let off = rank - s.len();
            if i < off {
                continue;
            }
            d = broadcast_dim(&d, &s[i - off])?;
        }
        out.push(d);
    }
    Some(out)
}

/// Two dims broadcast together.
pub fn broadcast_dim(d: &Dim, x: &Dim) -> Option<Dim> {
    Some(match (d, x) {
        (Dim::Known(1), _) => x.clone(),
        (_, Dim::Known(1)) => d.clone(),
        (Dim::Known(a), Dim::Known(b)) if a == b => d.clone(),
        (Dim::Known(_), Dim::Known(_)) => return None,
        (Dim::Known(_), _) => d.clone(),
        (_, Dim::Known(_)) => x.clone(),
        (Dim::Sym(a), Dim::Sym(b)) if a == b => d.clone(),
        _ => Dim::Unknown,
    })
}

/// Two statements of the same dim (a Concat's other axes, an Expand's
/// target): the better known of the two.
pub fn unify(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(_), _) => a.clone(),
        (_, Dim::Known(_)) => b.clone(),
        (Dim::Sym(_), _) => a.clone(),
        _ => b.clone(),
    }
}

/// The product of dims (symbolic where needed).
pub fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::Known(1), |acc, d| acc.mul(d))
}

/// Output size of a window op (conv or pool) along one axis: `input`
/// padded, swept by a kernel of `k` with `dilation` at `stride`.
pub fn window(
    input: &Dim,
    k: i64,
    stride: i64,
    dilation: i64,
    pad: (i64, i64),
    auto_pad: AutoPad,
    ceil: bool,
) -> Dim {
    // A stride of 0 would divide by zero, and attributes from the file can
    // overflow i64: both leave the dim unknown rather than panic.
    if stride <= 0 || k <= 0 || dilation <= 0 {
        return Dim::Unknown;
    }
    let Some(ek) = (k - 1).checked_mul(dilation).and_then(|v| v.checked_add(1)) else {
        return Dim::Unknown;
    };
    if let Dim::Known(x) = *input {
        return known_window(x, ek, stride, pad, auto_pad, ceil)
            .filter(|&v| v > 0)
            .map_or(Dim::Unknown, Dim::Known);
    }
    let span = |p: i64| input.add(&Dim::Known(p - ek));
    match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => input.ceil_div(stride),
        AutoPad::Valid => span(0).floor_div(stride).add(&Dim::Known(1)),
        AutoPad::NotSet if !ceil => span(pad.0 + pad.1).floor_div(stride).add(&Dim::Known(1)),
        // ceil_mode drops a last window that would start in the right
        // padding; that cannot happen when the kernel covers the stride
        // plus that padding, and is undecidable symbolically otherwise.
        AutoPad::NotSet if ek >= stride + pad.1 => {
            span(pad.0 + pad.1).ceil_div(stride).add(&Dim::Known(1))
        }
        AutoPad::NotSet => Dim::Unknown,
    }
}

fn known_window(
    x: i64,
    ek: i64,
    stride: i64,
    pad: (i64, i64),
    auto_pad: AutoPad,
    ceil: bool,
) -> Option<i64> {
    Some(match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => x.checked_add(stride - 1)? / stride,
        AutoPad::Valid => x.checked_sub(ek)?.div_euclid(stride) + 1,
        AutoPad::NotSet => {
            let span = x.checked_add(pad.0)?.checked_add(pad.1)?.checked_sub(ek)?;
            if span < 0 {
                return None;
            }
            if ceil {
                let mut o = span.checked_add(stride - 1)? / stride + 1;
                // The last window must start inside the input or left pad.
                if (o - 1).checked_mul(stride)? >= x.checked_add(pad.0)? {
                    o -= 1;
                }
                o
            } else {
                span / stride + 1
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_windows_match_numbers() {
        let h = Dim::sym("H");
        for (k, s, p, ceil) in [
            (3, 2, 1, false),
            (3, 1, 1, false),
            (2, 2, 0, true),
            (3, 2, 0, true),
        ] {
            let sym = window(&h, k, s, 1, (p, p), AutoPad::NotSet, ceil);
            for x in [7, 8, 640] {
                let known = window(&Dim::Known(x), k, s, 1, (p, p), AutoPad::NotSet, ceil);
                assert_eq!(
                    sym.eval(&|_| Some(x)),
                    known.known(),
                    "k{k} s{s} p{p} ceil {ceil} at {x}: {sym}"
                );
            }
        }
        // A 1x1 stride-2 ceil-mode pool may drop its last window: unknown.
        assert_eq!(
            window(&h, 1, 2, 1, (0, 0), AutoPad::NotSet, true),
            Dim::Unknown
        );
    }
}
