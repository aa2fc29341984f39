//! The topological order is cached per graph generation: a mutation must
//! make the next call see the new graph, and a clone must not share state
//! with its original.

use npuopt_ir::{DType, Graph, Op, TensorType};

fn relu_chain() -> (Graph, npuopt_ir::ValueId) {
    let mut g = Graph::new("g", 13);
    let x = g
        .add_input("x", &TensorType::new(DType::FLOAT, &[1, 4]))
        .unwrap();
    let (_, a) = g.add_node("a", Op::Relu, &[Some(x)], &["a"], None);
    let (_, b) = g.add_node("b", Op::Relu, &[Some(a[0])], &["b"], None);
    g.add_output(b[0]);
    (g, b[0])
}

fn names(g: &Graph) -> Vec<String> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .map(|id| g.node(id).name().to_string())
        .collect()
}

#[test]
fn a_mutation_is_seen_by_the_next_order() {
    let (mut g, b) = relu_chain();
    assert_eq!(names(&g), ["a", "b"]);
    assert_eq!(names(&g), ["a", "b"], "cached");
    let (_, c) = g.add_node("c", Op::Relu, &[Some(b)], &["c"], None);
    assert_eq!(names(&g), ["a", "b", "c"]);
    let first = g.topo_order().unwrap()[0];
    let c_node = g.producer(c[0]).unwrap();
    g.replace_all_uses(c[0], b);
    g.remove_node(c_node);
    assert_eq!(names(&g), ["a", "b"]);
    assert_eq!(g.topo_order().unwrap()[0], first);
}

#[test]
fn a_clone_orders_its_own_nodes() {
    let (g, b) = relu_chain();
    assert_eq!(names(&g), ["a", "b"]);
    let mut h = g.clone();
    h.add_node("c", Op::Relu, &[Some(b)], &["c"], None);
    assert_eq!(names(&h), ["a", "b", "c"]);
    assert_eq!(names(&g), ["a", "b"]);
}

/// A removed value's name is free again — for a new value and for
/// `unique_name` — and the graph still validates, however many values
/// come and go (the table drops its stale entries as they pile up).
#[test]
fn names_of_removed_values_are_free_again() {
    let mut g = Graph::new("g", 13);
    let x = g
        .add_input("x", &TensorType::new(DType::FLOAT, &[1, 4]))
        .unwrap();
    let (_, y) = g.add_node("keep", Op::Relu, &[Some(x)], &["y"], None);
    g.add_output(y[0]);
    for round in 0..3000 {
        // A fresh name each round (so removed names pile up), and every
        // third round one used before.
        let name = if round % 3 == 0 {
            format!("t{}", round / 2)
        } else {
            format!("t{round}")
        };
        let (n, out) = g.add_node("tmp", Op::Relu, &[Some(x)], &[&name], None);
        assert_eq!(g.value(out[0]).name(), name, "round {round}");
        assert_eq!(g.value_by_name(&name), Some(out[0]));
        g.remove_node(n);
        assert_eq!(g.value_by_name(&name), None);
        assert_eq!(g.unique_name(&name), name);
        if round % 250 == 0 {
            g.validate().unwrap();
        }
    }
    g.validate().unwrap();
    assert_eq!(names(&g), ["keep"]);
}
