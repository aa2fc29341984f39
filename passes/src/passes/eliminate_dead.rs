//! `eliminate-dead`: removes what nothing reads, and merges duplicate
//! initializers.
//!
//! Before:  y = Relu(x) (y unread, not a graph output); initializer w unread;
//!          initializers a and b with identical dtype, dims and bytes
//! After:   the Relu and w are gone; b's readers read a, and b is gone
//!
//! Rules:
//! * `dead-node`: a node none of whose outputs is read or a graph output.
//!   Only default-domain nodes without subgraphs are removed (a custom op
//!   may have effects we cannot see). Nodes are visited in reverse
//!   topological order, so a dead chain goes in one run.
//! * `unused-initializer`: an initializer nothing reads that is neither a
//!   graph output nor an input the caller feeds (in IR < 4 models every
//!   initializer is listed as an input: those are weights, and go with
//!   their input entry). Among them, the constants a rewrite computed and
//!   dropped, bytes and all, when their last reader went (see
//!   `Graph::begin_rewrites`): only their names were left.
//! * `duplicate-initializer`: constants (initializers that are not graph
//!   inputs) with the same dtype, dims and bytes — found by content hash,
//!   then compared exactly — are merged into the first; the others must not
//!   be graph outputs or be read from a subgraph. A dropped constant has
//!   no bytes to compare and takes no part.

use std::collections::HashMap;
use std::hash::BuildHasher;

use bytes::Bytes;
use foldhash::fast::FixedState;

use npuopt_ir::{Graph, Use, ValueId};

use crate::change::Change;
use crate::pass::{Pass, PassContext, PassError};
use npuopt_ir::eval::raw_bytes;

pub struct EliminateDead;

const NAME: &str = "eliminate-dead";

impl Pass for EliminateDead {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "remove nodes and initializers nothing reads; merge identical initializers"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        dead_nodes(g, cx)?;
        duplicate_initializers(g, cx);
        unused_initializers(g, cx);
        Ok(())
    }
}

fn is_dead(g: &Graph, v: ValueId) -> bool {
    g.value(v).uses().is_empty() && !g.is_graph_output(v)
}

fn dead_nodes(g: &mut Graph, cx: &mut PassContext) -> Result<(), PassError> {
    let mut order = g.topo_order()?;
    order.reverse();
    for id in order {
        if !cx.may_rewrite() {
            return Ok(());
        }
        let n = g.node(id);
        if !(n.domain().is_empty() || n.domain() == "ai.onnx") || n.has_subgraphs() {
            continue;
        }
        if !n.outputs().iter().flatten().all(|&o| is_dead(g, o)) {
            continue;
        }
        let name = n.name().to_string();
        let op_type = n.op_type().to_string();
        g.remove_node(id);
        cx.record(
            Change::new(
                NAME,
                "dead-node",
                &[&name],
                format!("removed {op_type} '{name}': nothing reads its outputs"),
            )
            .removed(&[&name]),
        );
    }
    Ok(())
}

fn unused_initializers(g: &mut Graph, cx: &mut PassContext) {
    // With the constants a rewrite computed and dropped when their last
    // reader went (their bytes already freed): removed and reported here
    // like the rest.
    let unused: Vec<ValueId> = g
        .initializers_and_dropped()
        .filter(|&v| is_dead(g, v) && !g.is_fed_input(v))
        .collect();
    for v in unused {
        if !cx.may_rewrite() {
            return;
        }
        let name = g.value(v).name().to_string();
        g.remove_value(v);
        cx.record(
            Change::new(
                NAME,
                "unused-initializer",
                &[],
                format!("removed initializer '{name}': nothing reads it"),
            )
            .removed(&[&name]),
        );
    }
}

fn duplicate_initializers(g: &mut Graph, cx: &mut PassContext) {
    // Buckets keyed by dtype, dims and a hash of a sample of the bytes: a
    // cheap key (hashing every byte of every weight on each iteration took
    // a third of the pipeline on RepVGG-A0); equality is then checked on
    // all bytes. The data of `raw_data` tensors is shared, not copied.
    type Key = (i32, Vec<i64>, u64);
    let mut seen: HashMap<Key, Vec<(ValueId, Bytes)>, FixedState> =
        HashMap::with_hasher(FixedState::with_seed(0));
    let inits: Vec<ValueId> = g.initializers().collect();
    for v in inits {
        if !cx.may_rewrite() {
            return;
        }
        let Some(t) = g.constant(v) else { continue };
        let Some(bytes) = data_of(t) else { continue };
        let key = (t.dtype().0, t.dims().to_vec(), sample_hash(&bytes));
        let bucket = seen.entry(key).or_default();
        let first = bucket.iter().find(|(_, b)| *b == bytes);
        let Some(&(first, _)) = first else {
            bucket.push((v, bytes));
            continue;
        };
        let val = g.value(v);
        let captured = val.uses().iter().any(|u| matches!(u, Use::Capture { .. }));
        if g.is_graph_output(v) || captured {
            continue;
        }
        let name = val.name().to_string();
        let first_name = g.value(first).name().to_string();
        g.replace_all_uses(v, first);
        g.remove_value(v);
        cx.record(
            Change::new(
                NAME,
                "duplicate-initializer",
                &[],
                format!("merged initializer '{name}' into identical '{first_name}'"),
            )
            .removed(&[&name]),
        );
    }
}

/// A constant's little-endian bytes: shared when stored in `raw_data`.
fn data_of(t: &npuopt_ir::Tensor) -> Option<Bytes> {
    match &t.proto().raw_data {
        Some(raw) if !t.is_external() && t.proto().segment.is_none() => {
            raw_bytes_len_ok(t, raw.len()).then(|| raw.clone())
        }
        _ => raw_bytes(t),
    }
}

fn raw_bytes_len_ok(t: &npuopt_ir::Tensor, len: usize) -> bool {
    t.numel()
        .and_then(|n| t.dtype().raw_len(n))
        .is_some_and(|want| want as usize == len)
}

/// A hash of the length and the first and last 256 bytes. Only a bucket
/// key (never written, never iterated): foldhash with a fixed seed, which
/// reads words, where FNV-1a's byte-at-a-time loop over these 512 bytes
/// was most of the pass on a 100k-node model (bench/scaling).
fn sample_hash(b: &[u8]) -> u64 {
    let head = &b[..b.len().min(256)];
    let tail = &b[b.len().saturating_sub(256)..];
    FixedState::with_seed(0).hash_one((b.len(), head, tail))
}
