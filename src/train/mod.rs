//! Training UniTok: the compiled training step (`step`), the learning-rate schedule
//! (`schedule`), datasets and the resumable loader (`data`), atomic checkpoints (`checkpoint`),
//! the reference initialisation of a fresh model (`init`) and the `unitok train` loop (`run`).
pub mod checkpoint;
pub mod data;
pub mod init;
pub mod run;
pub mod schedule;
pub mod step;
