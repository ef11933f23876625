//! Reading an ONNX graph: what a declared output name stands for.

/// The value a declared name (`node` or `node:port`) stands for, when it names a node of
/// `graph`: that node's output (the first unless a port is given).
pub fn node_output(graph: &tract_onnx::pb::GraphProto, name: &str) -> Option<String> {
    let (node, port) = match name.rsplit_once(':') {
        Some((n, p)) if p.parse::<usize>().is_ok() => (n, p.parse::<usize>().unwrap_or(0)),
        _ => (name, 0),
    };
    graph.node.iter().find(|n| n.name == node).and_then(|n| n.output.get(port).cloned())
}
