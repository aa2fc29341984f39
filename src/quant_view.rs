//! The quantization view: how much each layer's weights lose in int8, as
//! the model is and after `equalize-ranges` (`npuopt inspect --quant`, and
//! the `quantization` section of the optimize reports).
//!
//! The figures are properties of the weights alone
//! ([`npuopt_passes::quant_stats`]): the range spread across output
//! channels and the channel-mean int8 weight SQNR per tensor and per
//! channel. Activations need data and are not estimated here.

use npuopt_ir::Model;
use npuopt_passes::quant_stats::{quant_view, summarize, LayerQuant, QuantSummary};
use npuopt_targets::schema::{Granularity, Quantization};
use serde_json::{json, Value};

/// One layer as it is and after equalization.
#[derive(Clone, Debug)]
pub struct QuantRow {
    pub now: LayerQuant,
    pub equalized: Option<LayerQuant>,
}

/// The whole view of a model.
#[derive(Clone, Debug)]
pub struct QuantView {
    pub rows: Vec<QuantRow>,
    pub now: QuantSummary,
    pub equalized: QuantSummary,
    /// Chains `equalize-ranges` would rescale.
    pub chains: usize,
    /// Why some pairs are not equalized (Relu6 between them, …), one line
    /// each.
    pub skips: Vec<String>,
    /// Inference BatchNormalization nodes still in the model: their
    /// weights are not the deployed ones until BN folding runs.
    pub unfolded_batchnorms: usize,
}

/// The view of `model`: its figures, and those after `equalize-ranges`
/// alone (on a copy).
pub fn view(model: &Model) -> QuantView {
    let now_rows = quant_view(&model.graph);
    let mut equalized = model.clone();
    let report =
        npuopt_passes::run_pipeline(&mut equalized, &["equalize-ranges"], Default::default());
    let (chains, skips) = match &report {
        Ok(r) => (
            r.changes.len(),
            r.skips.iter().map(|s| s.reason.clone()).collect(),
        ),
        Err(_) => (0, Vec::new()),
    };
    let after_rows = if report.is_ok() {
        quant_view(&equalized.graph)
    } else {
        now_rows.clone()
    };
    let rows = now_rows
        .iter()
        .map(|r| QuantRow {
            now: r.clone(),
            equalized: after_rows.iter().find(|a| a.node == r.node).cloned(),
        })
        .collect();
    let unfolded_batchnorms = model
        .graph
        .node_ids()
        .filter(|&n| model.graph.node(n).op_type() == "BatchNormalization")
        .count();
    QuantView {
        rows,
        now: summarize(&now_rows),
        equalized: summarize(&after_rows),
        chains,
        skips,
        unfolded_batchnorms,
    }
}

fn db(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_infinite() => "exact".into(),
        Some(v) => format!("{v:.1}"),
    }
}

fn granularity(g: Granularity) -> &'static str {
    match g {
        Granularity::PerTensor => "per-tensor",
        Granularity::PerChannel => "per-channel",
    }
}

/// The table `npuopt inspect --quant` prints.
pub fn render(v: &QuantView, scheme: Option<(&str, Option<&Quantization>)>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "int8 weights (symmetric, [-127, 127]): range spread across output channels and\n\
         channel-mean SQNR in dB, as the model is and after equalize-ranges (6 dB ≈ 1 bit)"
    );
    match scheme {
        Some((name, Some(q))) => {
            let _ = writeln!(
                s,
                "target {name}: conv weights {}, fully-connected weights {}, activations {}",
                granularity(q.conv_weights),
                granularity(q.fc_weights),
                granularity(q.activations)
            );
        }
        Some((name, None)) => {
            let _ = writeln!(s, "target {name} does not state its int8 scheme");
        }
        None => {}
    }
    let w = v
        .rows
        .iter()
        .map(|r| r.now.node.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    let _ = writeln!(
        s,
        "\n{:<w$} {:<8} {:>5} {:>9} {:>10} {:>11}   {:>9} {:>10}",
        "layer", "op", "cout", "spread", "per-tensor", "per-channel", "eq spread", "eq per-t."
    );
    for r in &v.rows {
        let name: String = if r.now.node.chars().count() > w {
            let tail: Vec<char> = r.now.node.chars().rev().take(w - 1).collect();
            std::iter::once('…').chain(tail.into_iter().rev()).collect()
        } else {
            r.now.node.clone()
        };
        let (es, et) = r
            .equalized
            .as_ref()
            .map(|e| (format!("{:.1}", e.range_spread), db(e.sqnr_per_tensor_db)))
            .unwrap_or(("-".into(), "-".into()));
        let _ = writeln!(
            s,
            "{:<w$} {:<8} {:>5} {:>9.1} {:>10} {:>11}   {:>9} {:>10}",
            name,
            r.now.op_type,
            r.now.out_channels,
            r.now.range_spread,
            db(r.now.sqnr_per_tensor_db),
            db(r.now.sqnr_per_channel_db),
            es,
            et
        );
    }
    let _ = writeln!(
        s,
        "\nper-tensor SQNR: worst {} dB ({}), weight-weighted mean {} dB; after equalize-ranges ({} chain{}): worst {} dB, mean {} dB",
        db(v.now.worst_sqnr_per_tensor_db),
        v.now.worst_layer.as_deref().unwrap_or("-"),
        db(v.now.mean_sqnr_per_tensor_db),
        v.chains,
        if v.chains == 1 { "" } else { "s" },
        db(v.equalized.worst_sqnr_per_tensor_db),
        db(v.equalized.mean_sqnr_per_tensor_db),
    );
    if v.rows.is_empty() {
        let _ = writeln!(s, "no Conv, Gemm or MatMul with a float constant weight");
    }
    if v.unfolded_batchnorms > 0 {
        let _ = writeln!(
            s,
            "{} BatchNormalization nodes are not folded: these are not the weights a deployed model quantizes (run `npuopt optimize` first)",
            v.unfolded_batchnorms
        );
    }
    for why in v.skips.iter().take(10) {
        let _ = writeln!(s, "not equalized: {why}");
    }
    if v.skips.len() > 10 {
        let _ = writeln!(s, "… {} more (see --json)", v.skips.len() - 10);
    }
    s
}

fn layer_json(l: &LayerQuant) -> Value {
    json!({
        "range_spread": l.range_spread,
        "sqnr_per_tensor_db": l.sqnr_per_tensor_db,
        "sqnr_per_channel_db": l.sqnr_per_channel_db,
    })
}

pub fn summary_json(q: &QuantSummary) -> Value {
    json!({
        "layers": q.layers,
        "worst_sqnr_per_tensor_db": q.worst_sqnr_per_tensor_db,
        "worst_layer": q.worst_layer,
        "mean_sqnr_per_tensor_db": q.mean_sqnr_per_tensor_db,
        "max_range_spread": q.max_range_spread,
    })
}

/// The JSON form (`inspect --quant --json`). Infinite SQNR (exact) is
/// `null`, as JSON has no infinity.
pub fn view_json(v: &QuantView) -> Value {
    json!({
        "note": "int8 symmetric weight figures, channel-mean SQNR in dB; activations are not estimated",
        "layers": v.rows.iter().map(|r| {
            let mut o = json!({
                "name": r.now.node,
                "op": r.now.op_type,
                "out_channels": r.now.out_channels,
                "weights": r.now.weights,
            });
            let m = o.as_object_mut().expect("an object");
            for (k, val) in layer_json(&r.now).as_object().expect("an object") {
                m.insert(k.clone(), val.clone());
            }
            m.insert("equalized".into(), r.equalized.as_ref().map(layer_json).unwrap_or(Value::Null));
            o
        }).collect::<Vec<_>>(),
        "summary": summary_json(&v.now),
        "equalized_summary": summary_json(&v.equalized),
        "equalizable_chains": v.chains,
        "not_equalized": v.skips,
        "unfolded_batchnorms": v.unfolded_batchnorms,
    })
}

/// The input's weight figures, taken before optimization (only when a
/// report will carry them: they read every weight).
pub fn input_summary(input: &Model) -> QuantSummary {
    summarize(&quant_view(&input.graph))
}

/// What the optimize reports carry: the input's and the output's weight
/// figures, and the output's layers.
#[derive(Clone, Debug)]
pub struct QuantReport {
    pub input: QuantSummary,
    pub output: QuantSummary,
    pub layers: Vec<LayerQuant>,
}

pub fn report(input: QuantSummary, output: &Model) -> QuantReport {
    let layers = quant_view(&output.graph);
    QuantReport {
        input,
        output: summarize(&layers),
        layers,
    }
}

/// The `quantization` section of the JSON report.
pub fn report_json(r: &QuantReport) -> Value {
    json!({
        "note": "int8 symmetric weight figures, channel-mean SQNR in dB; activations are not estimated",
        "input": summary_json(&r.input),
        "output": summary_json(&r.output),
        "layers": r.layers.iter().map(|l| {
            let mut o = layer_json(l);
            let m = o.as_object_mut().expect("an object");
            m.insert("name".into(), json!(l.node));
            m.insert("op".into(), json!(l.op_type));
            m.insert("out_channels".into(), json!(l.out_channels));
            o
        }).collect::<Vec<_>>(),
    })
}

/// A dB figure for a table: `-` when absent, `exact` when infinite.
pub fn db_text(v: Option<f64>) -> String {
    db(v)
}
