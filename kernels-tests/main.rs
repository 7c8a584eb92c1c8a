//! Kernel and executor tests: every kernel against its CPU reference on the default adapter.

mod common;
mod elementwise;
mod executor;
mod matmul;
mod naga;
