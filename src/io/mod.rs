//! Readers and writers: files in, canonical types out, and back. The engine never sees a file.

pub mod lock;
pub mod read;
pub mod temp;
pub mod unchanged;
pub mod write;

/// Whether an error says a folder may not be written by this run (its permissions, a
/// read-only file system): the configuration is to change (`--out`, `--temp-dir`), not the
/// disk's state.
pub fn is_denied(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}
