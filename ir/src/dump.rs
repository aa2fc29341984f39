//! The IR as deterministic text: the format of every snapshot test.
//!
//! ```text
//! graph "main_graph" opset 13
//!   in  %0 "input": f32[1,3,8,8]
//!   init %1 "w": f32[4,3,3,3] #1f2e3d4c
//!   %2 = Conv(%0, %1) {group=1, kernel_shape=[3,3], pads=[1,1,1,1]} : f32[1,4,8,8]  # conv0
//!   out %2 "y"
//! ```
//!
//! Nodes are listed in topological order and values are renumbered in order
//! of first appearance, so ids that a pass left unused never show up and a
//! diff shows only what changed. Initializers show dtype, shape and a short
//! content hash; names are shown for graph inputs, outputs and initializers.

use std::collections::HashMap;
use std::fmt::Write;

use crate::graph::Graph;
use crate::ids::ValueId;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::AttributeProto;
use crate::tensor::Tensor;

/// The dump of a graph. Fails only if the graph has a cycle.
pub fn dump(graph: &Graph) -> crate::error::Result<String> {
    let order = graph.topo_order()?;
    let mut num: HashMap<ValueId, usize> = HashMap::new();
    let number = |v: ValueId, num: &mut HashMap<ValueId, usize>| -> usize {
        let n = num.len();
        *num.entry(v).or_insert(n)
    };
    for v in graph.inputs() {
        number(v, &mut num);
    }
    // Initializers are numbered by first use, so their numbers follow the
    // computation rather than the file's initializer order.
    for &id in &order {
        for v in graph.node(id).inputs.iter().flatten() {
            if graph.value(*v).producer.is_none() {
                number(*v, &mut num);
            }
        }
        for v in graph.node(id).outputs.iter().flatten() {
            number(*v, &mut num);
        }
    }
    for v in graph.initializers() {
        number(v, &mut num);
    }
    // What is left is read only by subgraphs or graph outputs (a sparse
    // initializer, say): numbered last, so other numbers do not move.
    for &id in &order {
        for v in &graph.node(id).captures {
            number(*v, &mut num);
        }
    }
    for v in graph.outputs() {
        number(v, &mut num);
    }

    let mut s = String::new();
    let _ = writeln!(s, "graph {:?} opset {}", graph.name(), graph.opset());
    let ty = |v: ValueId| {
        let val = graph.value(v);
        let t = val
            .ty
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into());
        if val.disputed {
            format!("{t} (disputed)")
        } else {
            t
        }
    };
    for v in graph.inputs() {
        let _ = writeln!(
            s,
            "  in   %{} {:?}: {}",
            num[&v],
            graph.value(v).name,
            ty(v)
        );
    }
    let mut inits: Vec<ValueId> = graph.initializers().collect();
    inits.sort_by_key(|v| num[v]);
    for v in inits {
        let t = graph.value(v).initializer.as_deref().expect("initializer");
        let _ = writeln!(
            s,
            "  init %{} {:?}: {}",
            num[&v],
            graph.value(v).name,
            tensor_summary(t)
        );
    }
    let name = |v: &Option<ValueId>| match v {
        Some(v) => format!("%{}", num[v]),
        None => "_".to_string(),
    };
    for &id in &order {
        let n = graph.node(id);
        let outs: Vec<String> = n.outputs.iter().map(name).collect();
        let ins: Vec<String> = n.inputs.iter().map(name).collect();
        let op = if n.domain().is_empty() || n.domain() == "ai.onnx" {
            n.op_type().to_string()
        } else {
            format!("{}::{}", n.domain(), n.op_type())
        };
        let _ = write!(s, "  {} = {}({})", outs.join(", "), op, ins.join(", "));
        let mut attrs: Vec<&AttributeProto> = n.attributes().iter().collect();
        attrs.sort_by(|a, b| a.name.cmp(&b.name));
        if !attrs.is_empty() {
            let parts: Vec<String> = attrs.iter().map(|a| attr_text(a)).collect();
            let _ = write!(s, " {{{}}}", parts.join(", "));
        }
        if !n.captures.is_empty() {
            let caps: Vec<String> = n.captures.iter().map(|v| format!("%{}", num[v])).collect();
            let _ = write!(s, " captures({})", caps.join(", "));
        }
        let types: Vec<String> = n.outputs.iter().flatten().map(|v| ty(*v)).collect();
        let _ = writeln!(s, " : {}  # {}", types.join(", "), n.name());
    }
    for v in graph.outputs() {
        let _ = writeln!(
            s,
            "  out  %{} {:?}: {}",
            num[&v],
            graph.value(v).name,
            ty(v)
        );
    }
    Ok(s)
}

/// `f32[16,3,3,3] #a1b2c3d4`: dtype, shape and a 32-bit content hash; tiny
/// tensors (≤ 4 values) show their values.
pub fn tensor_summary(t: &Tensor) -> String {
    let (mut s, tiny) = brief(t);
    if !tiny {
        let h = t.content_hash();
        let _ = write!(s, " #{:08x}", (h ^ (h >> 32)) as u32);
    }
    s
}

/// [`tensor_summary`] without the content hash (which reads every byte):
/// `f32[16,3,3,3]`, tiny tensors with their values.
pub fn tensor_brief(t: &Tensor) -> String {
    brief(t).0
}

/// The dtype and shape, and the values of a tiny tensor (then `true`).
fn brief(t: &Tensor) -> (String, bool) {
    let dims: Vec<String> = t.dims().iter().map(|d| d.to_string()).collect();
    let mut s = format!("{}[{}]", t.dtype(), dims.join(","));
    if t.numel().is_some_and(|n| n <= 4) {
        if let Ok(v) = t.to_i64() {
            let _ = write!(s, " {v:?}");
            return (s, true);
        }
        if let Ok(v) = t.to_f32() {
            let _ = write!(s, " {v:?}");
            return (s, true);
        }
    }
    (s, false)
}

fn attr_text(a: &AttributeProto) -> String {
    let name = a.name.as_deref().unwrap_or("");
    if let Some(r) = &a.ref_attr_name {
        return format!("{name}=@{r}");
    }
    let ty = a.r#type.and_then(|t| AttributeType::try_from(t).ok());
    let v = match ty {
        Some(AttributeType::Int) => a.i.unwrap_or(0).to_string(),
        Some(AttributeType::Float) => format!("{:?}", a.f.unwrap_or(0.0)),
        Some(AttributeType::String) => {
            format!(
                "{:?}",
                String::from_utf8_lossy(a.s.as_deref().unwrap_or_default())
            )
        }
        Some(AttributeType::Ints) => format!("{:?}", a.ints),
        Some(AttributeType::Floats) => format!("{:?}", a.floats),
        Some(AttributeType::Strings) => format!(
            "{:?}",
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        ),
        Some(AttributeType::Tensor) => {
            a.t.as_ref()
                .map(|t| tensor_summary(&Tensor::from_proto((**t).clone())))
                .unwrap_or_default()
        }
        Some(AttributeType::Graph) => {
            a.g.as_ref()
                .map(|g| {
                    format!(
                        "<graph {:?}: {} nodes>",
                        g.name.as_deref().unwrap_or(""),
                        g.node.len()
                    )
                })
                .unwrap_or_default()
        }
        Some(AttributeType::Graphs) => format!("<{} graphs>", a.graphs.len()),
        Some(t) => format!("<{}>", t.as_str_name()),
        None => "<untyped>".to_string(),
    };
    format!("{name}={v}")
}

/// A line diff of two dumps (longest common subsequence): kept lines start
/// with two spaces, removed ones with `- `, added ones with `+ `. This is
/// the body of every pass snapshot.
pub fn diff(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_is_an_lcs_diff() {
        assert_eq!(
            diff("a\nb\nc\nd\n", "a\nc\nx\nd\n"),
            "  a\n- b\n  c\n+ x\n  d\n"
        );
        // Reordered lines show as removed and added, unlike a set difference.
        assert_eq!(diff("a\nb\n", "b\na\n"), "- a\n  b\n+ a\n");
    }
}
