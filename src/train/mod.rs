//! Training: data loading and augmentation (`data`), atomic checkpoints (`checkpoint`).

pub mod checkpoint;
pub mod data;
