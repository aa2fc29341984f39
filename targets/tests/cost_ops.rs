//! The cost model per op class, against cycles computed by hand.
//!
//! The "unit" target below uses round numbers so every expectation can be
//! checked on paper: 1000 MHz, 64 MACs/cycle, channels in blocks of 8,
//! memory not modelled (sram_gbps = 0) unless a test turns it on.

use npuopt_fixtures::builder::{ConvSpec, ModelBuilder, PoolSpec};
use npuopt_ir::{import, Graph};
use npuopt_targets::{cost, Bound, Estimate, FlagKind, LayerCost, Target};

const UNIT: &str = r#"
[target]
name = "unit"
clock_mhz = 1000.0
source = "test"

[compute]
macs_per_cycle = 64

[align]
cin = 8
cout = 8
concat_offset = 8

[conv]
kernel_eff = { 1 = 1.0, 3 = 1.0, other = 0.5 }
stride2_eff = "cout/(cout+8)"
dilation_eff = "k/((k-1)*d+1)"
out_cycles_per_elem = 0.5

[depthwise]
frac_of_peak = 0.25
kstep = 4
stride2_penalty = 2.0
kernels = [3]
max_multiplier = 1

[group]
mode = "native"
align_per_group = 4

[eltwise]
add_cpe = 1.0
mul_cpe = 0.5
fused_add = false

[act]
supported = ["Relu", "Clip", "Sigmoid"]
fused = ["Relu"]
relu_cpe = 0.25
lut_cpe = 2.0

[pool]
out_cpe = 0.5
in_cpe = 0.25

[concat]
copy_cpe = 0.5
in_place_when_aligned = true

[movement]
copy_cpe = 0.5
transpose_cpe = 1.0

[memory]
sram_gbps = 0.0
dram_gbps = 0.0

[fallback]
cpu_gmacs = 1.0
transfer_gbps = 1.0
"#;

fn unit() -> Target {
    Target::from_toml(UNIT, "unit.toml").unwrap()
}

fn unit_with(from: &str, to: &str) -> Target {
    assert!(UNIT.contains(from), "{from}");
    Target::from_toml(&UNIT.replace(from, to), "unit.toml").unwrap()
}

fn graph(b: &ModelBuilder) -> Graph {
    import::from_proto(b.build(), None).unwrap().graph
}

fn layer<'a>(e: &'a Estimate, op: &str) -> &'a LayerCost {
    e.layers
        .iter()
        .find(|l| l.op == op)
        .unwrap_or_else(|| panic!("no {op} layer"))
}

/// One conv on a `[1, cin, h, h]` input.
fn one_conv(cin: i64, h: i64, spec: ConvSpec) -> Graph {
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, cin, h, h]);
    let y = b.conv(&x, spec);
    b.output(&y);
    graph(&b)
}

#[test]
fn dense_conv_rounds_channels_up() {
    // 12 → 20 channels, 3×3, 8×8: executed ⌈20⌉₈·⌈12⌉₈·9·64 = 24·16·576
    // = 221 184 MACs → /64 = 3456 cycles; output floor 64·20·0.5 = 640.
    let e = cost::estimate(&one_conv(12, 8, ConvSpec::new(20, 3).pad(1)), &unit());
    let l = layer(&e, "Conv");
    assert_eq!(l.macs, 20 * 12 * 9 * 64);
    assert_eq!(l.executed_macs, 221_184);
    assert_eq!(l.cycles, 3456);
    assert_eq!(l.bound, Bound::Compute);
    assert!((l.utilization - 138_240.0 / (3456.0 * 64.0)).abs() < 1e-12);
    assert!(l.supported);
    assert_eq!(e.total_cycles, 3456);
    assert!((e.latency_ms - 3456.0 / 1e6).abs() < 1e-12);
}

#[test]
fn stride_two_uses_the_named_formula() {
    // 16 → 16, 3×3 stride 2 → 4×4: executed 16·16·9·16 = 36 864 → /64 =
    // 576, efficiency cout/(cout+8) = 16/24 → 864 cycles.
    let e = cost::estimate(
        &one_conv(16, 8, ConvSpec::new(16, 3).pad(1).stride(2)),
        &unit(),
    );
    assert_eq!(layer(&e, "Conv").cycles, 864);
}

#[test]
fn other_kernels_use_the_table() {
    // 8 → 8, 5×5 on 4×4 (pad 2): 8·8·25·16 = 25 600 → /64 = 400 → /0.5 = 800.
    let e = cost::estimate(&one_conv(8, 4, ConvSpec::new(8, 5).pad(2)), &unit());
    assert_eq!(layer(&e, "Conv").cycles, 800);
}

#[test]
fn dilation_uses_the_named_formula() {
    // 8 → 8, 3×3 dilation 2 (pad 2) on 8×8: 8·8·9·64 = 36 864 → /64 = 576;
    // efficiency k/((k−1)d+1) = 3/5 → 960.
    let e = cost::estimate(
        &one_conv(8, 8, ConvSpec::new(8, 3).pad(2).dilation(2)),
        &unit(),
    );
    assert_eq!(layer(&e, "Conv").cycles, 960);
}

#[test]
fn a_one_by_one_conv_can_be_output_bound() {
    // 8 → 8, 1×1 on 8×8: compute 8·8·64/64 = 64; output 512·0.5 = 256.
    let e = cost::estimate(&one_conv(8, 8, ConvSpec::new(8, 1)), &unit());
    let l = layer(&e, "Conv");
    assert_eq!((l.cycles, l.bound), (256, Bound::Output));
}

#[test]
fn memory_bound_when_bandwidth_is_short() {
    // 1 GB/s at 1000 MHz = 1 byte/cycle. 8 → 8, 1×1 on 8×8: reads 512 +
    // 64 weight bytes, writes 512 → 1088 cycles.
    let t = unit_with("sram_gbps = 0.0", "sram_gbps = 1.0");
    let e = cost::estimate(&one_conv(8, 8, ConvSpec::new(8, 1)), &t);
    let l = layer(&e, "Conv");
    assert_eq!((l.cycles, l.bound), (1088, Bound::Memory));
}

#[test]
fn depthwise_runs_at_a_fraction_of_peak() {
    // C = 16, 3×3 on 8×8: executed 16·⌈9⌉₄·64 = 12 288 → /(64·0.25) = 768;
    // output 1024·0.5 = 512.
    let e = cost::estimate(
        &one_conv(16, 8, ConvSpec::new(16, 3).pad(1).depthwise()),
        &unit(),
    );
    let l = layer(&e, "Conv");
    assert_eq!(l.executed_macs, 12_288);
    assert_eq!((l.cycles, l.bound), (768, Bound::Compute));
    // Stride 2 → 4×4: 16·12·16 = 3072 → /16 = 192 → ×2 penalty = 384.
    let e = cost::estimate(
        &one_conv(16, 8, ConvSpec::new(16, 3).pad(1).stride(2).depthwise()),
        &unit(),
    );
    assert_eq!(layer(&e, "Conv").cycles, 384);
}

#[test]
fn unsupported_depthwise_kernel_falls_back_to_the_cpu() {
    // 5×5 depthwise, C = 16, 8×8: 25 600 MACs on a 1 GMAC/s CPU at
    // 1000 MHz = 25 600 cycles, plus 2048 bytes at 1 GB/s = 2048 cycles.
    let e = cost::estimate(
        &one_conv(16, 8, ConvSpec::new(16, 5).pad(2).depthwise()),
        &unit(),
    );
    let l = layer(&e, "Conv");
    assert_eq!(
        (l.cycles, l.bound, l.supported),
        (27_648, Bound::Fallback, false)
    );
    assert_eq!(l.executed_macs, l.macs);
    let f = &e.flags[0];
    assert_eq!(f.kind, FlagKind::Fallback);
    assert_eq!(f.rewrite, Some("depthwise-to-group"));
}

#[test]
fn group_conv_native_split_and_cpu() {
    // 16 → 12, G = 2, 3×3 on 8×8: per group 8 in, 6 out.
    let g = one_conv(16, 8, ConvSpec::new(12, 3).pad(1).group(2));
    // native, 4 per group: 2·⌈6⌉₄·⌈8⌉₄·9·64 = 73 728 → /64 = 1152.
    let l = layer(&cost::estimate(&g, &unit()), "Conv").clone();
    assert_eq!((l.executed_macs, l.cycles), (73_728, 1152));
    assert_eq!(l.macs, 12 * 8 * 9 * 64);
    // split: 2 convs of ⌈6⌉₈·⌈8⌉₈ → 73 728 → 1152, + concat 768·0.5 = 384.
    let t = unit_with("mode = \"native\"", "mode = \"split\"");
    assert_eq!(layer(&cost::estimate(&g, &t), "Conv").cycles, 1536);
    // cpu: 55 296 MACs + (1024 in + 1024 out: 12 channels stored as 16)
    // bytes = 57 344 cycles.
    let t = unit_with("mode = \"native\"", "mode = \"cpu\"");
    let l = layer(&cost::estimate(&g, &t), "Conv").clone();
    assert_eq!((l.cycles, l.supported), (57_344, false));
}

#[test]
fn depthwise_with_a_larger_multiplier_is_a_group_conv() {
    // 8 → 16, G = 8 (multiplier 2 > max 1): native, per group 1 in, 2
    // out → 8·⌈2⌉₄·⌈1⌉₄·9·64 = 73 728 → 1152.
    let e = cost::estimate(
        &one_conv(8, 8, ConvSpec::new(16, 3).pad(1).group(8)),
        &unit(),
    );
    assert_eq!(layer(&e, "Conv").cycles, 1152);
}

fn eltwise(op: &str, fused_conv: bool) -> Graph {
    let mut b = ModelBuilder::new("t", 14);
    let x = b.input("x", &[1, 8, 4, 4]);
    let a = if fused_conv {
        b.conv(&x, ConvSpec::new(8, 1))
    } else {
        b.input("a", &[1, 8, 4, 4])
    };
    let y = match op {
        "Add" => b.add(&a, &x),
        "Mul" => b.mul(&a, &x),
        _ => unreachable!(),
    };
    b.output(&y);
    graph(&b)
}

#[test]
fn add_and_mul_cost_per_element() {
    // 128 elements: Add 1.0 → 128, Mul 0.5 → 64.
    let e = cost::estimate(&eltwise("Add", false), &unit());
    assert_eq!(
        (layer(&e, "Add").cycles, layer(&e, "Add").bound),
        (128, Bound::Output)
    );
    let e = cost::estimate(&eltwise("Mul", false), &unit());
    assert_eq!(layer(&e, "Mul").cycles, 64);
    // Memory at 1 byte/cycle: 3 × 128 bytes = 384.
    let t = unit_with("sram_gbps = 0.0", "sram_gbps = 1.0");
    let e = cost::estimate(&eltwise("Add", false), &t);
    assert_eq!(
        (layer(&e, "Add").cycles, layer(&e, "Add").bound),
        (384, Bound::Memory)
    );
}

#[test]
fn add_after_a_conv_is_free_when_fused() {
    let t = unit_with("fused_add = false", "fused_add = true");
    let e = cost::estimate(&eltwise("Add", true), &t);
    let l = layer(&e, "Add");
    assert_eq!((l.cycles, l.bound), (0, Bound::Free));
    let e = cost::estimate(&eltwise("Add", true), &unit());
    assert_eq!(layer(&e, "Add").cycles, 128);
}

fn concat_of(c1: i64, c2: i64) -> Graph {
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, c1, 4, 4]);
    let y = b.input("y", &[1, c2, 4, 4]);
    let z = b.concat(&[&x, &y], 1);
    b.output(&z);
    graph(&b)
}

#[test]
fn concat_is_free_when_aligned_and_a_copy_otherwise() {
    let e = cost::estimate(&concat_of(8, 8), &unit());
    assert_eq!(layer(&e, "Concat").bound, Bound::Free);
    // 4 + 8 channels: offset 4 is not a multiple of 8 → a copy of the
    // output, stored with its 12 channels padded to 16: 256·0.5 = 128.
    let e = cost::estimate(&concat_of(4, 8), &unit());
    assert_eq!(layer(&e, "Concat").cycles, 128);
    let f = &e.flags[0];
    assert_eq!(
        (f.kind, f.rewrite),
        (FlagKind::ConcatCopy, Some("concat-to-add"))
    );
    assert!(f.message.contains("[4]"), "{}", f.message);
    // A target that always copies.
    let t = unit_with(
        "in_place_when_aligned = true",
        "in_place_when_aligned = false",
    );
    assert_eq!(
        layer(&cost::estimate(&concat_of(8, 8), &t), "Concat").cycles,
        128
    );
}

#[test]
fn activations_fused_lut_or_fallback() {
    let mut b = ModelBuilder::new("t", 14);
    let x = b.input("x", &[1, 8, 4, 4]);
    let c = b.conv(&x, ConvSpec::new(8, 1));
    let r1 = b.relu(&c); // fused into the conv: 0
    let r2 = b.relu(&x); // standalone: 128 · 0.25 = 32
    let s = b.sigmoid(&x); // LUT: 128 · 2 = 256
    let h = b.hard_swish(&x); // unsupported: 128 + 256 bytes = 384
    for v in [&r1, &r2, &s, &h] {
        b.output(v);
    }
    let e = cost::estimate(&graph(&b), &unit());
    let relus: Vec<&LayerCost> = e.layers.iter().filter(|l| l.op == "Relu").collect();
    assert_eq!((relus[0].cycles, relus[0].bound), (0, Bound::Free));
    assert!(relus[0].note.contains("fused"));
    assert_eq!(relus[1].cycles, 32);
    assert_eq!(layer(&e, "Sigmoid").cycles, 256);
    let h = layer(&e, "HardSwish");
    assert_eq!((h.cycles, h.supported), (384, false));
}

#[test]
fn pools_reshapes_and_unknown_ops() {
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, 8, 8, 8]);
    let p = b.max_pool(&x, PoolSpec::new(2)); // out 128·0.5 = 64, in 512·0.25 = 128
    let gp = b.global_avg_pool(&x); // out 8·0.5 = 4, in 512·0.25 = 128
    let f = b.flatten(&gp, 1); // free
    let u = b.custom("com.example", "Foo", &[&p], vec![], &[1, 8, 4, 4]); // 128 + 256
    b.output(&f);
    b.output(&u);
    let e = cost::estimate(&graph(&b), &unit());
    assert_eq!(layer(&e, "MaxPool").cycles, 128);
    assert_eq!(layer(&e, "GlobalAveragePool").cycles, 128);
    assert_eq!(layer(&e, "Flatten").bound, Bound::Free);
    let u = layer(&e, "com.example::Foo");
    assert_eq!(
        (u.cycles, u.bound, u.supported),
        (384, Bound::Fallback, false)
    );
    assert_eq!(e.total_cycles, 128 + 128 + 384);
}

#[test]
fn gemm_is_a_one_by_one_conv() {
    // [1, 20] × [20, 10]: ⌈10⌉₈·⌈20⌉₈ = 16·24 = 384 MACs → /64 = 6;
    // output 10·0.5 = 5.
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, 20]);
    let y = b.gemm(&x, 10, true);
    b.output(&y);
    let e = cost::estimate(&graph(&b), &unit());
    let l = layer(&e, "Gemm");
    assert_eq!((l.macs, l.executed_macs, l.cycles), (200, 384, 6));
}

#[test]
fn channel_padding_is_flagged_with_pad_channels() {
    // 16 → 12 → 16: the second conv reads 12 channels, padded to 16.
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, 16, 8, 8]);
    let h = b.conv(&x, ConvSpec::new(12, 3).pad(1));
    let y = b.conv(&h, ConvSpec::new(16, 3).pad(1));
    b.output(&y);
    let e = cost::estimate(&graph(&b), &unit());
    let pads: Vec<_> = e
        .flags
        .iter()
        .filter(|f| f.kind == FlagKind::ChannelPadding)
        .collect();
    assert_eq!(pads.len(), 2, "{:?}", e.flags);
    assert!(pads.iter().all(|f| f.rewrite == Some("pad-channels")));
    assert!(pads[0].message.starts_with("12 channels: padded to 16"));
}

#[test]
fn estimates_are_deterministic_and_read_only() {
    let g = graph(&{
        let mut b = ModelBuilder::new("t", 13);
        let x = b.input("x", &[1, 12, 8, 8]);
        let y = b.conv(&x, ConvSpec::new(20, 3).pad(1));
        b.output(&y);
        b
    });
    let before = npuopt_ir::dump::dump(&g).unwrap();
    let a = cost::estimate(&g, &unit());
    let b = cost::estimate(&g, &unit());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(npuopt_ir::dump::dump(&g).unwrap(), before);
}

/// Weight prefetch, by hand. Memory at 4 bytes/cycle (4 GB/s at 1 GHz,
/// int8), no output-stage floor.
/// * A: 3×3, 16 → 16 on 16×16: compute 16·16·9·256 / 64 = 9216 cycles;
///   memory (4096 in + 4096 out + 2304 weights) / 4 = 2624 → compute
///   bound, leaving 9216 − 2624 = 6592 cycles of memory slack.
/// * B: 1×1, 16 → 512: compute 512·16·256 / 64 = 32 768; memory (4096 in +
///   131 072 out + 8192 weights) / 4 = 35 840 → memory bound. Prefetched,
///   its 2048 weight cycles move under A's slack: 35 840 − 2048 = 33 792.
#[test]
fn prefetched_weights_hide_under_the_previous_layers_slack() {
    let text = UNIT
        .replace("sram_gbps = 0.0", "sram_gbps = 4.0")
        .replace("out_cycles_per_elem = 0.5", "out_cycles_per_elem = 0.0");
    let off = Target::from_toml(&text, "unit.toml").unwrap();
    let on = Target::from_toml(
        &text.replace("dram_gbps = 0.0", "dram_gbps = 0.0\nweight_prefetch = true"),
        "unit.toml",
    )
    .unwrap();
    let mut b = ModelBuilder::new("t", 13);
    let x = b.input("x", &[1, 16, 16, 16]);
    let a = b.conv(&x, ConvSpec::new(16, 3).pad(1));
    let y = b.conv(&a, ConvSpec::new(512, 1));
    b.output(&y);
    let g = graph(&b);
    let cycles = |e: &Estimate| {
        e.layers
            .iter()
            .map(|l| (l.cycles, l.bound))
            .collect::<Vec<_>>()
    };
    let e_off = cost::estimate(&g, &off);
    assert_eq!(
        cycles(&e_off),
        vec![(9216, Bound::Compute), (35_840, Bound::Memory)]
    );
    let e_on = cost::estimate(&g, &on);
    assert_eq!(
        cycles(&e_on),
        vec![(9216, Bound::Compute), (33_792, Bound::Memory)]
    );
    assert!(
        e_on.layers[1].note.contains("2048 cycles hidden"),
        "{}",
        e_on.layers[1].note
    );
    assert_eq!(cost::totals(&g, &on).total_cycles, 9216 + 33_792);
}
