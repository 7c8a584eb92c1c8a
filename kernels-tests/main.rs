//! Kernel and executor tests: every kernel against its CPU reference on the default adapter.

mod attention;
mod backward;
mod backward_attention;
mod backward_conv;
mod backward_mm;
mod backward_norm;
mod bench;
mod cast;
mod cli;
mod common;
mod conv;
mod elementwise;
mod executor;
mod gather;
mod io;
mod loss;
mod matmul;
mod mcq;
mod model;
mod naga;
mod norm;
mod optim;
mod peak;
mod pool;
mod reduce;
mod softmax;
