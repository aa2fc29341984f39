//! The evaluator's edge cases.

use super::*;
use crate::dtype::DType;
use crate::tensor::Tensor;

fn f(dims: &[i64], v: &[f32]) -> Val {
    Val::of(&Tensor::from_f32("", dims, v)).unwrap()
}
fn i(dims: &[i64], v: &[i64]) -> Val {
    Val::from_i64(dims.to_vec(), v)
}

#[test]
fn gather_wraps_negative_indices_and_rejects_out_of_range() {
    let d = i(&[4], &[10, 20, 30, 40]);
    let r = gather(&d, &i(&[2], &[-1, 0]), 0).unwrap();
    assert_eq!(r.ints().unwrap(), vec![40, 10]);
    assert!(gather(&d, &i(&[1], &[4]), 0).is_none());
    assert!(gather(&d, &i(&[1], &[-5]), 0).is_none());
    let s = gather(&d, &i(&[], &[2]), 0).unwrap();
    assert_eq!(s.dims, Vec::<i64>::new());
    let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let r = gather(&m, &i(&[2], &[2, 0]), 1).unwrap();
    assert_eq!(r.dims, vec![2, 2]);
    assert_eq!(r.f32s(), vec![3., 1., 6., 4.]);
}

#[test]
fn slice_clamps_and_steps_backwards() {
    let d = i(&[5], &[0, 1, 2, 3, 4]);
    let all = |s, e, st| {
        slice(&d, &[s], &[e], None, Some(&[st]))
            .unwrap()
            .ints()
            .unwrap()
    };
    assert_eq!(all(1, i64::MAX, 1), vec![1, 2, 3, 4]);
    assert_eq!(all(-2, 100, 1), vec![3, 4]);
    assert_eq!(all(-1, i64::MIN, -1), vec![4, 3, 2, 1, 0]);
    assert_eq!(all(10, -10, -2), vec![4, 2, 0]);
    assert_eq!(all(0, 5, 2), vec![0, 2, 4]);
    assert_eq!(all(3, 1, 1), Vec::<i64>::new());
    let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let r = slice(&m, &[-1], &[0], Some(&[-1]), Some(&[-1])).unwrap();
    assert_eq!(r.dims, vec![2, 2]);
    assert_eq!(r.f32s(), vec![3., 2., 6., 5.]);
}

#[test]
fn squeeze_unsqueeze_negative_axes() {
    let x = f(&[3, 1], &[1., 2., 3.]);
    assert_eq!(unsqueeze(&x, &[-1, 0]).unwrap().dims, vec![1, 3, 1, 1]);
    assert_eq!(squeeze(&x, Some(&[-1])).unwrap().dims, vec![3]);
    assert!(squeeze(&x, Some(&[0])).is_none());
    assert_eq!(squeeze(&x, None).unwrap().dims, vec![3]);
}

#[test]
fn cast_truncates_toward_zero_and_refuses_nan() {
    let x = f(&[4], &[-1.7, 1.7, -0.5, 2.0]);
    assert_eq!(
        cast(&x, DType::INT64).unwrap().ints().unwrap(),
        vec![-1, 1, 0, 2]
    );
    assert!(cast(&f(&[1], &[f32::NAN]), DType::INT64).is_none());
    assert!(cast(&f(&[1], &[1e20]), DType::INT32).is_none());
    let r = cast(&i(&[2], &[16777217, -3]), DType::FLOAT).unwrap();
    assert_eq!(r.f32s(), vec![16777216.0, -3.0]);
}

#[test]
fn int_div_truncates_and_refuses_zero() {
    let r = binary("Div", &i(&[2], &[-7, 7]), &i(&[], &[2])).unwrap();
    assert_eq!(r.ints().unwrap(), vec![-3, 3]);
    assert!(binary("Div", &i(&[1], &[1]), &i(&[1], &[0])).is_none());
    assert!(binary("Add", &i(&[1], &[i64::MAX]), &i(&[1], &[1])).is_none());
}

#[test]
fn broadcasting_and_transpose() {
    let a = f(&[2, 1], &[1., 2.]);
    let b = f(&[3], &[10., 20., 30.]);
    let r = binary("Add", &a, &b).unwrap();
    assert_eq!(r.dims, vec![2, 3]);
    assert_eq!(r.f32s(), vec![11., 21., 31., 12., 22., 32.]);
    let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let t = transpose(&m, None).unwrap();
    assert_eq!(t.dims, vec![3, 2]);
    assert_eq!(t.f32s(), vec![1., 4., 2., 5., 3., 6.]);
}

#[test]
fn ranges() {
    let r = range(&i(&[], &[10]), &i(&[], &[0]), &i(&[], &[-3])).unwrap();
    assert_eq!(r.ints().unwrap(), vec![10, 7, 4, 1]);
    let r = range(&f(&[], &[0.]), &f(&[], &[2.5]), &f(&[], &[1.])).unwrap();
    assert_eq!(r.f32s(), vec![0., 1., 2.]);
    assert!(range(&f(&[], &[0.]), &f(&[], &[1.]), &f(&[], &[0.1])).is_none());
    assert!(range(&i(&[], &[0]), &i(&[], &[1]), &i(&[], &[0])).is_none());
}

#[test]
fn reshape_zero_and_infer() {
    let x = f(&[2, 3], &[0.; 6]);
    assert_eq!(reshape(&x, &[0, -1], false).unwrap().dims, vec![2, 3]);
    assert_eq!(reshape(&x, &[-1], false).unwrap().dims, vec![6]);
    assert!(reshape(&x, &[4, -1], false).is_none());
}

#[test]
fn comparisons_selections_and_reductions() {
    let a = f(&[2, 2], &[1., 5., -2., 3.]);
    let b = f(&[2], &[2., 2.]);
    assert_eq!(compare("Max", &a, &b).unwrap().f32s(), vec![2., 5., 2., 3.]);
    assert_eq!(
        compare("Min", &a, &b).unwrap().f32s(),
        vec![1., 2., -2., 2.]
    );
    let lt = compare("Less", &a, &b).unwrap();
    assert_eq!(lt.ints().unwrap(), vec![1, 0, 1, 0]);
    let w = where_(&lt, &a, &b).unwrap();
    assert_eq!(w.f32s(), vec![1., 2., -2., 2.]);
    assert_eq!(not(&lt).unwrap().ints().unwrap(), vec![0, 1, 0, 1]);
    let m = reduce("ReduceMax", &a, &[1], false).unwrap();
    assert_eq!((m.dims.clone(), m.f32s()), (vec![2], vec![5., 3.]));
    let m = reduce("ReduceMin", &a, &[], true).unwrap();
    assert_eq!((m.dims.clone(), m.f32s()), (vec![1, 1], vec![-2.]));
    assert!(compare("Max", &f(&[1], &[f32::NAN]), &b).is_none());
    let c = unary("Ceil", &f(&[2], &[1.2, -1.2])).unwrap();
    assert_eq!(c.f32s(), vec![2., -1.]);
    let e = compare("Equal", &i(&[2], &[3, 4]), &i(&[], &[4])).unwrap();
    assert_eq!(e.ints().unwrap(), vec![0, 1]);
}

/// The strided copy behind Transpose and Slice against the per-element
/// offsets it replaced: every element size, ranks 0–4, negative steps.
#[test]
fn strided_copy_matches_per_element_offsets() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for case in 0..400 {
        let esize = [1usize, 2, 4, 8, 16][case % 5];
        let dtype = match esize {
            1 => DType::UINT8,
            2 => DType::FLOAT16,
            4 => DType::FLOAT,
            8 => DType::INT64,
            _ => DType(crate::proto::tensor_proto::DataType::Complex128 as i32),
        };
        let rank = next(5) as usize;
        let dims: Vec<i64> = (0..rank).map(|_| 1 + next(4) as i64).collect();
        // A source big enough for any walk below, starting mid-way so that
        // negative steps stay inside it.
        let span: i64 = dims.iter().product::<i64>().max(1) * 4;
        let len = (span * 2) as usize;
        let x = Val {
            dtype,
            dims: vec![len as i64],
            bytes: (0..len * esize).map(|b| (b * 31 % 251) as u8).collect(),
        };
        let step: Vec<i64> = dims.iter().map(|_| next(7) as i64 - 3).collect();
        let base = span;
        let want: Vec<u8> = movement::gather_offsets_signed(&dims, &step, base)
            .into_iter()
            .flat_map(|o| x.elem(o).to_vec())
            .collect();
        let got = movement::gather_strided(&x, &dims, &step, base);
        assert_eq!(got, want, "case {case}: dims {dims:?} step {step:?}");
    }
}

#[test]
fn mod_takes_the_divisors_sign_unless_fmod() {
    let x = i(&[4], &[7, -7, 7, -7]);
    let y = i(&[4], &[3, 3, -3, -3]);
    let m = |fmod| {
        let a = [crate::attr::int("fmod", fmod)];
        evaluate("Mod", &a, 17, &[Some(x.clone()), Some(y.clone())])
    };
    // Python: 7 % 3 = 1, -7 % 3 = 2, 7 % -3 = -2, -7 % -3 = -1.
    assert_eq!(m(0).unwrap().ints().unwrap(), vec![1, 2, -2, -1]);
    // C fmod: the dividend's sign.
    assert_eq!(m(1).unwrap().ints().unwrap(), vec![1, -1, 1, -1]);
    assert!(binary("Mod", &i(&[1], &[1]), &i(&[1], &[0])).is_none());
    assert!(binary("Mod", &i(&[1], &[i64::MIN]), &i(&[1], &[-1])).is_none());
    let r = binary("FMod", &f(&[2], &[5.5, -5.5]), &f(&[], &[2.0])).unwrap();
    assert_eq!(r.f32s(), vec![1.5, -1.5]);
    // A float Mod needs fmod = 1 (the spec): declined, not guessed.
    assert!(binary("Mod", &f(&[1], &[5.5]), &f(&[], &[2.0])).is_none());
}

#[test]
fn expand_broadcasts_both_ways() {
    // [3,1] with shape [2,1,4]: the 1 in the shape keeps x's 3.
    let x = i(&[3, 1], &[1, 2, 3]);
    let r = evaluate(
        "Expand",
        &[],
        13,
        &[Some(x.clone()), Some(i(&[3], &[2, 1, 4]))],
    )
    .unwrap();
    assert_eq!(r.dims, vec![2, 3, 4]);
    let v = r.ints().unwrap();
    assert_eq!(&v[..12], &[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    assert_eq!(&v[12..], &v[..12]);
    // Incompatible dims and negative dims decline.
    assert!(expand(&x, &[2, 1]).is_none());
    assert!(expand(&x, &[-1, 1]).is_none());
    assert!(expand(&x, &[1 << 20, 1 << 20, 3, 1]).is_none());
    let r = expand(&f(&[1], &[2.5]), &[3]).unwrap();
    assert_eq!(r.f32s(), vec![2.5, 2.5, 2.5]);
}

#[test]
fn tile_repeats_each_axis() {
    let x = i(&[2, 2], &[1, 2, 3, 4]);
    let r = evaluate("Tile", &[], 13, &[Some(x.clone()), Some(i(&[2], &[2, 3]))]).unwrap();
    assert_eq!(r.dims, vec![4, 6]);
    assert_eq!(
        r.ints().unwrap(),
        [
            [1, 2, 1, 2, 1, 2],
            [3, 4, 3, 4, 3, 4],
            [1, 2, 1, 2, 1, 2],
            [3, 4, 3, 4, 3, 4]
        ]
        .concat()
    );
    assert_eq!(tile(&x, &[0, 1]).unwrap().dims, vec![0, 2]);
    assert!(tile(&x, &[2]).is_none());
    assert!(tile(&x, &[-1, 1]).is_none());
    assert!(tile(&x, &[1 << 40, 1 << 40]).is_none());
}

#[test]
fn gather_nd_picks_slices_and_rejects_out_of_range() {
    let d = i(&[2, 3], &[0, 1, 2, 10, 11, 12]);
    // Full tuples pick elements; a negative index wraps.
    let r = evaluate(
        "GatherND",
        &[],
        13,
        &[Some(d.clone()), Some(i(&[2, 2], &[1, 2, 0, -1]))],
    )
    .unwrap();
    assert_eq!(r.dims, vec![2]);
    assert_eq!(r.ints().unwrap(), vec![12, 2]);
    // Shorter tuples pick rows.
    let r = gather_nd(&d, &i(&[1, 1], &[1])).unwrap();
    assert_eq!(r.dims, vec![1, 3]);
    assert_eq!(r.ints().unwrap(), vec![10, 11, 12]);
    assert!(gather_nd(&d, &i(&[1, 2], &[2, 0])).is_none());
    assert!(gather_nd(&d, &i(&[1, 3], &[0, 0, 0])).is_none());
    let batched = [crate::attr::int("batch_dims", 1)];
    assert!(evaluate(
        "GatherND",
        &batched,
        13,
        &[Some(d), Some(i(&[2, 1], &[0, 1]))]
    )
    .is_none());
}

/// Transposes of weight-sized planes (the second-to-last output axis
/// steps one source element, the last more), with and without leading
/// axes, the last axis reversed, every element size — against the
/// per-element offsets (the random cases above are at most 4 wide).
#[test]
fn plane_transposes_match_per_element_offsets() {
    for esize in [1usize, 2, 4, 8] {
        let dtype = match esize {
            1 => DType::UINT8,
            2 => DType::FLOAT16,
            4 => DType::FLOAT,
            _ => DType::INT64,
        };
        for (lead, a, b) in [
            (0, 1, 3),
            (0, 15, 4),
            (0, 16, 16),
            (0, 17, 5),
            (2, 40, 7),
            (1, 33, 1),
        ] {
            for b_dir in [1i64, -1] {
                let mut dims: Vec<i64> = (0..lead).map(|i| 2 + i as i64).collect();
                dims.extend([a, b]);
                // Source laid out as [lead…, b, a]: axis a steps 1, axis b
                // steps a (backwards from the end with b_dir = -1).
                let plane = a * b;
                let mut step: Vec<i64> = (0..lead)
                    .map(|i| plane * dims[i + 1..lead].iter().product::<i64>())
                    .collect();
                step.extend([1, b_dir * a]);
                let total: i64 = dims.iter().product();
                let base = if b_dir < 0 { (b - 1) * a } else { 0 };
                let x = Val {
                    dtype,
                    dims: vec![total],
                    bytes: (0..total as usize * esize)
                        .map(|i| (i * 37 % 253) as u8)
                        .collect(),
                };
                let want: Vec<u8> = movement::gather_offsets_signed(&dims, &step, base)
                    .into_iter()
                    .flat_map(|o| x.elem(o).to_vec())
                    .collect();
                let got = movement::gather_strided(&x, &dims, &step, base);
                assert_eq!(got, want, "dims {dims:?} step {step:?} esize {esize}");
            }
        }
    }
}
