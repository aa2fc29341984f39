//! Names a subgraph (If/Loop/Scan body) reads from enclosing scopes.

use std::collections::BTreeSet;

use crate::proto::{AttributeProto, GraphProto};

/// Names read inside `g` (or its nested subgraphs) that `g` does not define.
pub fn free_names(g: &GraphProto) -> BTreeSet<String> {
    let mut defined: BTreeSet<&str> = BTreeSet::new();
    for i in &g.input {
        defined.insert(i.name.as_deref().unwrap_or(""));
    }
    for t in &g.initializer {
        defined.insert(t.name.as_deref().unwrap_or(""));
    }
    for s in &g.sparse_initializer {
        if let Some(v) = &s.values {
            defined.insert(v.name.as_deref().unwrap_or(""));
        }
    }
    for n in &g.node {
        for o in &n.output {
            defined.insert(o);
        }
    }
    let mut free = BTreeSet::new();
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(i.as_str()) {
                free.insert(i.clone());
            }
        }
        for name in attribute_free_names(&n.attribute) {
            if !defined.contains(name.as_str()) {
                free.insert(name);
            }
        }
    }
    for o in &g.output {
        let name = o.name.as_deref().unwrap_or("");
        if !name.is_empty() && !defined.contains(name) {
            free.insert(name.to_string());
        }
    }
    free
}

/// Free names of every subgraph held by a node's attributes.
pub fn attribute_free_names(attrs: &[AttributeProto]) -> BTreeSet<String> {
    let mut free = BTreeSet::new();
    for a in attrs {
        for g in a.g.as_deref().into_iter().chain(&a.graphs) {
            free.extend(free_names(g));
        }
    }
    free
}
