//! Readers and writers: files in, canonical types out, and back. The engine never sees a file.

pub mod lock;
pub mod read;
pub mod temp;
pub mod unchanged;
pub mod write;
