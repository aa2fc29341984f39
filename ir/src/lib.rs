//! npuopt's intermediate representation of ONNX models.
//!
//! * [`proto`]: the ONNX schema (prost), current to ONNX 1.23 / IR version 14.
//! * [`import`]: bytes → a validated [`Model`]; every defect is an
//!   [`IrError`] naming the node or tensor, never a panic.
//! * [`Graph`]: nodes and values with stable ids and a mutation API that
//!   keeps producers and uses current.
//! * [`export`]: [`Model`] → bytes, lossless and atomic.
//! * [`dump`]: the deterministic text form every snapshot test uses.
//!
//! ```
//! use npuopt_ir::{import, Graph, Model};
//! # let bytes = npuopt_ir::testing::tiny_model_bytes();
//! let model: Model = import::from_bytes(bytes.into(), None)?;
//! assert_eq!(model.graph.node_count(), 1);
//! let again = model.to_bytes()?;
//! # assert_eq!(again, npuopt_ir::testing::tiny_model_bytes());
//! # Ok::<(), npuopt_ir::IrError>(())
//! ```

pub mod attr;
mod buffer;
mod decode;
pub mod dtype;
pub mod dump;
mod encode;
pub mod error;
pub mod eval;
pub mod export;
pub mod external;
pub mod graph;
pub mod hash;
pub mod ids;
pub mod import;
pub mod infer;
pub mod macs;
pub mod mapped;
pub mod model;
pub mod name;
mod name_table;
pub mod node;
pub mod op;
pub mod pin;
pub mod proto;
pub mod shape;
pub mod subgraph;
pub mod symbol;
pub mod tensor;
#[doc(hidden)]
pub mod testing;
pub mod value;

pub use dtype::DType;
pub use error::IrError;
pub use graph::{Dispute, Graph};
pub use ids::{NodeId, ValueId};
pub use model::Model;
pub use name::Name;
pub use node::Node;
pub use op::Op;
pub use shape::{Dim, TensorType};
pub use tensor::Tensor;
pub use value::{Use, Value};
