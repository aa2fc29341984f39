//! The Ethos-U55-256 cost model against Arm Vela's own estimate.
//!
//! Reference (recorded in shared/design/TARGETS.md, also cited in
//! targets/builtin/ethos-u55-256.toml): Vela 3.10's estimator
//! (`ethosu/vela/npu_performance.py`) on MobileNetV2 1.0/224's 52 conv
//! layers, Ethos-U55-256, compute only, data in SRAM: 299.5 M MACs,
//! 2.92 M NPU cycles (5.85 ms at 500 MHz), 40% average utilisation,
//! depthwise layers 35% of the cycles.
//!
//! The model is torchvision's MobileNetV2 as `npuopt_fixtures` builds it
//! (`architectures::mobilenetv2(224, 1000)`, Sandler et al. 2018's table).
//! Its 52 convs are what Vela's figure covers; the BatchNormalizations and
//! ReLU6 clips fuse into them (free), and the residual Adds, the pooling
//! and the classifier are not among the 52, so only the conv layers are
//! summed.

use bytes::Bytes;
use npuopt_targets::{cost, LayerCost, Target};
use prost::Message;

const VELA_CYCLES: f64 = 2.92e6;
const VELA_MACS: f64 = 299.5e6;

fn is_depthwise(l: &LayerCost) -> bool {
    matches!(l.kind, cost::LayerKind::Depthwise { .. })
}

#[test]
fn mobilenet_v2_on_ethos_u55_256_is_within_15_percent_of_vela() {
    let proto = npuopt_fixtures::architectures::mobilenetv2(224, 1000);
    let m = npuopt_ir::import::from_bytes(Bytes::from(proto.encode_to_vec()), None).unwrap();
    let t = Target::builtin("ethos-u55-256").unwrap();
    let est = cost::estimate(&m.graph, &t);
    let convs: Vec<&LayerCost> = est.layers.iter().filter(|l| l.op == "Conv").collect();
    assert_eq!(convs.len(), 52);
    for l in est.layers.iter().filter(|l| l.op != "Conv") {
        // Ethos-U runs a residual Add as its own op (not in the 52 either).
        let not_a_conv = ["Add", "GlobalAveragePool", "Flatten", "Gemm"].contains(&l.op.as_str());
        assert!(not_a_conv || l.cycles == 0, "{} costs {}", l.name, l.cycles);
    }
    let macs: u64 = convs.iter().map(|l| l.macs).sum();
    assert!((macs as f64 / VELA_MACS - 1.0).abs() < 0.001, "MACs {macs}");
    let cycles: u64 = convs.iter().map(|l| l.cycles).sum();
    let ratio = cycles as f64 / VELA_CYCLES;
    let dw: u64 = convs
        .iter()
        .filter(|l| is_depthwise(l))
        .map(|l| l.cycles)
        .sum();
    let dw_share = dw as f64 / cycles as f64;
    let utilization = macs as f64 / (cycles as f64 * est.peak_macs_per_cycle);
    let latency_ms = cycles as f64 / 500e3;
    eprintln!(
        "estimate {:.3} M cycles ({latency_ms:.2} ms at 500 MHz) vs Vela 2.92 M: {:+.1}%; \
         utilisation {:.0}% (Vela 40%); depthwise {:.0}% of cycles (Vela 35%)",
        cycles as f64 / 1e6,
        (ratio - 1.0) * 100.0,
        utilization * 100.0,
        dw_share * 100.0
    );
    assert!((0.85..=1.15).contains(&ratio), "estimate {cycles} cycles");
    assert!((0.30..=0.50).contains(&utilization));
    assert!((0.25..=0.45).contains(&dw_share));
}
