//! unitok: the UniTok visual tokenizer on any GPU wgpu reaches, with hand-written WGSL kernels.
//!
//! Layers, bottom up: `device` (adapter, limits, pipelines, buffer pool), `tensor` (shapes and
//! host data), `ops` (one file per op family: CPU reference + kernel dispatches), `graph`
//! (recording, memory planning, one-submission execution), `shaders` (the WGSL library).
//! Host side: `config` (every architecture knob), `io` (checkpoints, weights, .npy, images),
//! `text` (the CLIP tokenizer).
//! See ARCHITECTURE.md for the path data takes.

pub mod app;
pub mod autodiff;
pub mod bench;
pub mod config;
pub mod device;
pub mod error;
pub mod graph;
pub mod io;
pub mod model;
pub mod ops;
pub mod selfcheck;
pub mod shaders;
pub mod tensor;
pub mod text;
pub mod train;

pub use config::UnitokConfig;
pub use device::Gpu;
pub use error::{Error, Result};
pub use graph::{Graph, Plan, TensorId};
pub use tensor::{DType, HostTensor, TensorDesc};
