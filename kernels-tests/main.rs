//! Kernel and executor tests: every kernel against its CPU reference on the default adapter.

mod attention;
mod common;
mod elementwise;
mod executor;
mod naga;
mod softmax;
