//! Training UniTok: the compiled training step (`step`), the learning-rate schedule
//! (`schedule`).
pub mod init;
pub mod schedule;
pub mod step;
