//! What `npuopt inspect` reports about a model.

use std::collections::BTreeMap;

use npuopt_ir::{macs, Model, TensorType};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    pub name: String,
    /// `f32[1,3,224,224]`; `?` where the model does not say.
    pub ty: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    pub name: String,
    pub op: String,
    pub macs: u64,
}

/// A model at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub producer: String,
    pub ir_version: i64,
    /// Opset imports, `domain → version` (`ai.onnx` for the default domain).
    pub opsets: BTreeMap<String, i64>,
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
    pub nodes: usize,
    /// Op type → count, sorted by op type.
    pub ops: BTreeMap<String, usize>,
    pub parameters: u64,
    pub parameter_bytes: u64,
    /// Useful multiply-accumulates: products with a zero weight (padding or
    /// block-diagonal zeros a rewrite added) are not counted.
    pub macs: u64,
    /// Every multiply-accumulate the layers perform, zeros included.
    pub dense_macs: u64,
    /// Nodes whose MACs could not be computed (shapes unknown).
    pub nodes_with_unknown_macs: usize,
    /// Symbolic dims the MAC counts evaluated at 1, sorted.
    pub symbols_at_one: Vec<String>,
    /// Values whose declared and inferred types disagree (no rewrite
    /// relies on their shapes).
    pub disputes: Vec<String>,
    /// The layers with the most MACs, largest first (at most 5).
    pub largest_layers: Vec<LayerSummary>,
}

pub fn summarize(model: &Model) -> ModelSummary {
    summarize_with(model, true)
}

/// [`summarize`], with the MAC figures (`macs`, `dense_macs`,
/// `nodes_with_unknown_macs`, `symbols_at_one`, `largest_layers`) left at
/// zero and empty unless `macs`: the useful MACs count the zeros of every
/// weight, reading the whole model, which a run that shows no summary
/// (`optimize -q` without a report) does not need.
pub(crate) fn summarize_with(model: &Model, with_macs: bool) -> ModelSummary {
    let g = &model.graph;
    let h = &model.header;
    let producer = match (&h.producer_name, &h.producer_version) {
        (Some(n), Some(v)) if !v.is_empty() => format!("{n} {v}"),
        (Some(n), _) => n.clone(),
        _ => String::new(),
    };
    let opsets = h
        .opset_import
        .iter()
        .map(|o| {
            let d = o.domain.as_deref().unwrap_or("");
            let d = if d.is_empty() { "ai.onnx" } else { d };
            (d.to_string(), o.version.unwrap_or(0))
        })
        .collect();
    let ty = |t: Option<&TensorType>| t.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
    let inputs = g
        .inputs()
        .filter(|&v| g.value(v).initializer().is_none())
        .map(|v| TensorSummary {
            name: g.value(v).name().to_string(),
            ty: ty(g.ty(v)),
        })
        .collect();
    let outputs = g
        .outputs()
        .map(|v| TensorSummary {
            name: g.value(v).name().to_string(),
            ty: ty(g.ty(v)),
        })
        .collect();
    let mut ops = BTreeMap::new();
    for id in g.node_ids() {
        let n = g.node(id);
        let key = if n.domain().is_empty() || n.domain() == "ai.onnx" {
            n.op_type().to_string()
        } else {
            format!("{}::{}", n.domain(), n.op_type())
        };
        *ops.entry(key).or_insert(0) += 1;
    }
    let (mut parameters, mut parameter_bytes) = (0u64, 0u64);
    for v in g.initializers() {
        let t = g.value(v).initializer().expect("initializer");
        parameters += t.numel().unwrap_or(0);
        parameter_bytes += t.byte_size();
    }
    let symbols = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let at_one = |s: &str| {
        symbols.borrow_mut().insert(s.to_string());
        Some(1)
    };
    let (dense, total, unknown) = if with_macs {
        macs::totals_with(g, &at_one)
    } else {
        (0, 0, 0)
    };
    let nodes = g.node_ids().filter(|_| with_macs);
    let mut layers: Vec<LayerSummary> = nodes
        .filter_map(|id| {
            let m = macs::useful_node_macs_with(g, id, &at_one)?;
            (m > 0).then(|| LayerSummary {
                name: g.node(id).name().to_string(),
                op: g.node(id).op_type().to_string(),
                macs: m,
            })
        })
        .collect();
    layers.sort_by(|a, b| b.macs.cmp(&a.macs).then_with(|| a.name.cmp(&b.name)));
    layers.truncate(5);
    ModelSummary {
        producer,
        ir_version: model.ir_version(),
        opsets,
        inputs,
        outputs,
        nodes: g.node_count(),
        ops,
        parameters,
        parameter_bytes,
        macs: total,
        dense_macs: dense,
        nodes_with_unknown_macs: unknown,
        symbols_at_one: symbols.into_inner().into_iter().collect(),
        disputes: g.disputes().iter().map(|d| d.to_string()).collect(),
        largest_layers: layers,
    }
}

/// One node of a model, as a row of a per-layer table.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub op: String,
    /// The op's domain; empty for the default ONNX domain.
    pub domain: String,
    /// Useful multiply-accumulates (see [`ModelSummary::macs`]); `None`
    /// where the shapes are unknown.
    pub macs: Option<u64>,
    /// Every multiply-accumulate, zeros included; `None` where unknown.
    pub dense_macs: Option<u64>,
}

/// One row per node, in topological order (the order an exported model
/// lists them): the per-layer view of a model without a target.
pub fn node_rows(model: &Model) -> Vec<NodeRow> {
    let g = &model.graph;
    let order = g
        .topo_order()
        .unwrap_or_else(|_| g.node_ids().collect::<Vec<_>>());
    order
        .into_iter()
        .map(|id| {
            let n = g.node(id);
            NodeRow {
                name: n.name().to_string(),
                op: n.op_type().to_string(),
                domain: n.domain().to_string(),
                macs: macs::useful_node_macs(g, id),
                dense_macs: macs::node_macs(g, id),
            }
        })
        .collect()
}

/// `12.3 M`-style figures for people.
pub fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1} k", n as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} M", n as f64 / 1e6),
        _ => format!("{:.2} G", n as f64 / 1e9),
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "producer:    {}",
            if self.producer.is_empty() {
                "?"
            } else {
                &self.producer
            }
        )?;
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect();
        writeln!(
            f,
            "ir version:  {}   opsets: {}",
            self.ir_version,
            opsets.join(", ")
        )?;
        for i in &self.inputs {
            writeln!(f, "input:       {} {}", i.name, i.ty)?;
        }
        for o in &self.outputs {
            writeln!(f, "output:      {} {}", o.name, o.ty)?;
        }
        let ops: Vec<String> = self.ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "nodes:       {} ({})", self.nodes, ops.join(", "))?;
        writeln!(
            f,
            "parameters:  {} ({})",
            human_count(self.parameters),
            human_bytes(self.parameter_bytes)
        )?;
        write!(f, "MACs:        {}", human_count(self.macs))?;
        if self.dense_macs != self.macs {
            write!(f, " useful of {} executed", human_count(self.dense_macs))?;
        }
        if self.nodes_with_unknown_macs > 0 {
            write!(
                f,
                " (+{} nodes with unknown shapes)",
                self.nodes_with_unknown_macs
            )?;
        }
        if !self.symbols_at_one.is_empty() {
            write!(
                f,
                " (symbolic dims evaluated at 1: {}; pin them with --input-shape)",
                self.symbols_at_one.join(", ")
            )?;
        }
        writeln!(f)?;
        for d in &self.disputes {
            writeln!(f, "warning:     {d}; no rewrite relies on its shape")?;
        }
        if !self.largest_layers.is_empty() {
            writeln!(f, "largest layers:")?;
            for l in &self.largest_layers {
                writeln!(
                    f,
                    "  {:<40} {:<14} {} MACs",
                    l.name,
                    l.op,
                    human_count(l.macs)
                )?;
            }
        }
        Ok(())
    }
}
