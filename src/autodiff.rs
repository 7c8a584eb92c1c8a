//! Reverse-mode automatic differentiation over the graph.
//!
//! `Graph::backward(loss, wrt)` walks the recorded nodes in reverse and asks each op's
//! `backward` rule to record the ops for its input gradients into the same graph. Gradients
//! reaching one tensor from several consumers are summed. Saved activations are ordinary
//! tensors of the forward graph, so the planner frees each right after its last backward use;
//! forward, backward and optimizer updates compile into one plan that is re-run every step.

use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::ops::BackwardCx;
use std::collections::HashMap;

impl Graph {
    /// Record the gradient of the scalar `loss` (shape [] or [1]) with respect to each tensor in
    /// `wrt`; returns them in order. A tensor the loss does not depend on gets a zero gradient.
    pub fn backward(&mut self, loss: TensorId, wrt: &[TensorId]) -> Result<Vec<TensorId>> {
        if self.desc(loss).numel() != 1 {
            return Err(Error::Graph(format!(
                "backward: the loss must be a scalar, got shape {:?}",
                self.shape(loss)
            )));
        }
        // Which tensors lie on a path from a `wrt` tensor to the loss: only their rules run.
        let n_nodes = self.nodes.len();
        let mut depends = vec![false; self.tensors.len()];
        for t in wrt {
            depends[t.0] = true;
        }
        for node in &self.nodes {
            if node.inputs.iter().any(|t| depends[t.0]) {
                for o in &node.outputs {
                    depends[o.0] = true;
                }
            }
        }
        let one = self.constant_fill(&self.shape(loss).to_vec(), 1.0)?;
        let mut grads: HashMap<TensorId, TensorId> = HashMap::from([(loss, one)]);
        for k in (0..n_nodes).rev() {
            let node = self.nodes[k].clone();
            let out_grads: Vec<Option<TensorId>> =
                node.outputs.iter().map(|o| grads.get(o).copied()).collect();
            if out_grads.iter().all(|g| g.is_none()) || !node.inputs.iter().any(|t| depends[t.0]) {
                continue;
            }
            let mut cx = BackwardCx {
                g: self,
                inputs: &node.inputs,
                outputs: &node.outputs,
                grads: &out_grads,
            };
            let in_grads = node.op.backward(&mut cx)?;
            if in_grads.len() != node.inputs.len() {
                return Err(Error::Graph(format!(
                    "{}: backward returned {} gradients for {} inputs",
                    node.op.name(),
                    in_grads.len(),
                    node.inputs.len()
                )));
            }
            for (t, g) in node.inputs.iter().zip(in_grads) {
                let Some(g) = g else { continue };
                if !depends[t.0] {
                    continue;
                }
                if self.shape(g) != self.shape(*t) {
                    return Err(Error::Graph(format!(
                        "{}: gradient of shape {:?} for an input of shape {:?}",
                        node.op.name(),
                        self.shape(g),
                        self.shape(*t)
                    )));
                }
                let sum = match grads.get(t) {
                    Some(prev) => self.add(*prev, g)?,
                    None => g,
                };
                grads.insert(*t, sum);
            }
        }
        wrt.iter()
            .map(|t| match grads.get(t) {
                Some(g) => Ok(*g),
                None => {
                    let shape = self.shape(*t).to_vec();
                    self.constant_fill(&shape, 0.0)
                }
            })
            .collect()
    }
}
