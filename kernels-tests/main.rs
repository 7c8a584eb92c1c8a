//! Kernel and executor tests: every kernel against its CPU reference on the default adapter.

mod attention;
mod bench;
mod common;
mod conv;
mod elementwise;
mod executor;
mod gather;
mod mcq;
mod io;
mod matmul;
mod model;
mod naga;
mod peak;
mod norm;
mod reduce;
mod pool;
mod softmax;
