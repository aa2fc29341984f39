//! The Ethos-U55-256 cost model against Arm Vela's own estimate.
//!
//! Reference (recorded in shared/design/TARGETS.md, also cited in
//! targets/builtin/ethos-u55-256.toml): Vela 3.10's estimator
//! (`ethosu/vela/npu_performance.py`) on MobileNetV2 1.0/224's 52 conv
//! layers, Ethos-U55-256, compute only, data in SRAM: 299.5 M MACs,
//! 2.92 M NPU cycles (5.85 ms at 500 MHz), 40% average utilisation,
//! depthwise layers 35% of the cycles.
//!
//! The 52 layers are built here from the standard architecture table
//! (Sandler et al. 2018): input 224, stem 3→32 stride 2, inverted residual
//! blocks (t, c, n, s) = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2),
//! (6,96,3,1), (6,160,3,2), (6,320,1,1), final 1×1 320→1280 (the
//! classifier, a fully connected layer, is not one of the 52). Weights are
//! zero-filled initializers: only their shapes matter.

use bytes::Bytes;
use npuopt_ir::op::{Conv, Window};
use npuopt_ir::{infer, DType, Graph, Op, Tensor, TensorType, ValueId};
use npuopt_targets::{cost, LayerCost, Target};

const VELA_CYCLES: f64 = 2.92e6;
const VELA_MACS: f64 = 299.5e6;

fn conv(g: &mut Graph, x: ValueId, cin: i64, cout: i64, k: i64, s: i64, group: i64) -> ValueId {
    let i = g.node_count();
    let dims = [cout, cin / group, k, k];
    let n = dims.iter().product::<i64>() as usize;
    let w = g.add_initializer(
        &format!("w{i}"),
        // Non-zero weights: zero weights would be no useful work at all.
        Tensor::from_raw(
            "",
            DType::FLOAT,
            &dims,
            Bytes::from(1.0f32.to_le_bytes().repeat(n)),
        ),
    );
    let p = k / 2;
    let op = Op::Conv(Conv {
        window: Window {
            kernel_shape: Some(vec![k, k]),
            strides: Some(vec![s, s]),
            pads: Some(vec![p, p, p, p]),
            ..Default::default()
        },
        group,
    });
    let (_, outs) = g.add_node(&format!("conv{i}"), op, &[Some(x), Some(w)], &["y"], None);
    outs[0]
}

/// MobileNetV2 1.0/224's 52 conv layers.
pub fn mobilenet_v2() -> Graph {
    let mut g = Graph::new("mobilenetv2", 13);
    let x = g
        .add_input("x", &TensorType::new(DType::FLOAT, &[1, 3, 224, 224]))
        .unwrap();
    let mut y = conv(&mut g, x, 3, 32, 3, 2, 1);
    let mut c = 32;
    for (t, cc, n, s) in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ] {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = c * t;
            if t != 1 {
                y = conv(&mut g, y, c, hidden, 1, 1, 1);
            }
            y = conv(&mut g, y, hidden, hidden, 3, stride, hidden);
            y = conv(&mut g, y, hidden, cc, 1, 1, 1);
            c = cc;
        }
    }
    y = conv(&mut g, y, c, 1280, 1, 1, 1);
    g.add_output(y);
    infer::infer_types(&mut g);
    g.validate().unwrap();
    g
}

fn is_depthwise(l: &LayerCost) -> bool {
    matches!(l.kind, cost::LayerKind::Depthwise { .. })
}

#[test]
fn mobilenet_v2_on_ethos_u55_256_is_within_15_percent_of_vela() {
    let g = mobilenet_v2();
    assert_eq!(g.node_count(), 52);
    let t = Target::builtin("ethos-u55-256").unwrap();
    let est = cost::estimate(&g, &t);
    let macs = est.macs as f64;
    assert!((macs / VELA_MACS - 1.0).abs() < 0.001, "MACs {macs}");
    let cycles = est.total_cycles as f64;
    let ratio = cycles / VELA_CYCLES;
    let dw: u64 = est
        .layers
        .iter()
        .filter(|l| is_depthwise(l))
        .map(|l| l.cycles)
        .sum();
    let dw_share = dw as f64 / cycles;
    eprintln!(
        "estimate {:.3} M cycles ({:.2} ms at 500 MHz) vs Vela 2.92 M: {:+.1}%; \
         utilisation {:.0}% (Vela 40%); depthwise {:.0}% of cycles (Vela 35%)",
        cycles / 1e6,
        est.latency_ms,
        (ratio - 1.0) * 100.0,
        est.utilization * 100.0,
        dw_share * 100.0
    );
    assert!((0.85..=1.15).contains(&ratio), "estimate {cycles} cycles");
    assert!((0.30..=0.50).contains(&est.utilization));
    assert!((0.25..=0.45).contains(&dw_share));
    assert!((est.latency_ms - cycles / 500e3).abs() < 1e-9);
}
