//! Spill files written and read around the page cache (`O_DIRECT`, Linux).
//!
//! A spill file is written once, read back once and deleted: the page cache can only lose on
//! it. Written through the cache, each of its pages is first allocated and filled by the
//! kernel (on the 2-core VM of the benchmarks, whose freed memory goes back to the host, that
//! costs as much as the copy: 2.1 GB of acts' spill for 10 M acts took 3.6 s of system CPU,
//! 12 % of the run's CPU, on the spill thread), then dropped unwritten. With `O_DIRECT` the
//! device reads the bytes from the process's own buffer, in blocks of [`BLOCK`] bytes taken
//! from an aligned scratch buffer ([`Aligned`]).
//!
//! Where a file system refuses `O_DIRECT` (at open, or at the first transfer: tmpfs, some
//! network file systems) the file is opened again through the cache; everywhere but Linux it
//! always is. Either way, the bytes read back are the bytes appended.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How spill files reach the disk (`--spill-io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpillIo {
    /// Around the page cache (`O_DIRECT`) where the file system takes it, else through it.
    #[default]
    Direct,
    /// Through the page cache: for a disk much slower than memory copies (a network file
    /// system, a spinning disk), where a run's spill files fit in the free memory.
    Cached,
}

impl SpillIo {
    /// Whether direct transfers are asked for.
    fn direct(self) -> bool {
        self == SpillIo::Direct
    }
}

/// Size and alignment of a direct transfer: the largest logical block size in common use.
pub(crate) const BLOCK: usize = 4096;

/// Bytes per direct transfer at most (writes and reads): on the benchmark VM, transfers of
/// 1 MiB reach the device's speed (2.4 GB/s written, `dd oflag=direct`); 64 KiB ones a third
/// of it.
pub(crate) const TRANSFER: usize = 1 << 20;

/// A zeroed buffer of `len` bytes whose start is aligned on [`BLOCK`]: a vector one block
/// longer, used from its first aligned byte.
pub(crate) struct Aligned {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` is a whole number of blocks, at least one: a transfer's unit.
    pub(crate) fn new(len: usize) -> Aligned {
        assert!(
            len >= BLOCK && len / BLOCK * BLOCK == len,
            "{len} bytes: not whole blocks"
        );
        let bytes = vec![0u8; len + BLOCK];
        let start = bytes.as_ptr().align_offset(BLOCK);
        Aligned { bytes, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// Opens `path` with `options`, asking for direct transfers where the platform has them;
/// whether it got them.
fn open_direct(path: &Path, options: &mut OpenOptions, direct: bool) -> io::Result<(File, bool)> {
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        let mut with_flag = options.clone();
        with_flag.custom_flags(libc::O_DIRECT);
        match with_flag.open(path) {
            Ok(file) => return Ok((file, true)),
            // The file system does not do direct transfers: through the cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = direct;
    Ok((options.open(path)?, false))
}

/// Whether `e` is a file system refusing a direct transfer.
fn refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return e.raw_os_error() == Some(libc::EINVAL);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

#[cfg(test)]
thread_local! {
    /// Direct transfers the file system takes before it refuses every other (tests only; some
    /// network file systems accept the flag at open and refuse the transfers).
    static REFUSE_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// A refusal of the next direct transfer, where a test asked for it ([`REFUSE_AFTER`]).
fn injected_refusal() -> io::Result<()> {
    #[cfg(all(test, target_os = "linux"))]
    if let Some(left) = REFUSE_AFTER.get() {
        if left == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        REFUSE_AFTER.set(Some(left - 1));
    }
    Ok(())
}

/// A file being written: bytes are appended in any amounts; whole blocks go to the device as
/// they are complete, the last partial one at [`SpillFile::finish`].
pub(crate) struct SpillFile {
    path: PathBuf,
    file: File,
    direct: bool,
    /// Bytes in the file (whole blocks while direct).
    written: u64,
    /// The bytes after the last whole block written, fewer than [`BLOCK`] (always empty when
    /// not direct).
    tail: Vec<u8>,
}

impl SpillFile {
    /// Creates (or truncates) `path`, direct where `io` asks for it and the file system takes
    /// it.
    pub(crate) fn create(path: &Path, io: SpillIo) -> io::Result<SpillFile> {
        SpillFile::create_with(path, io.direct())
    }

    fn create_with(path: &Path, direct: bool) -> io::Result<SpillFile> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        let (file, direct) = open_direct(path, &mut options, direct)?;
        Ok(SpillFile {
            path: path.to_path_buf(),
            file,
            direct,
            written: 0,
            tail: Vec::with_capacity(BLOCK),
        })
    }

    /// Whether the file is written around the page cache.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct
    }

    /// Appends `bytes`; the whole blocks among what was appended so far are written, through
    /// `scratch` (at least one block long).
    pub(crate) fn append(&mut self, mut bytes: &[u8], scratch: &mut Aligned) -> io::Result<()> {
        while self.direct && !bytes.is_empty() {
            let buf = scratch.as_mut();
            let held = self.tail.len();
            let taken = bytes.len().min(buf.len() - held);
            buf[..held].copy_from_slice(&self.tail);
            buf[held..held + taken].copy_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            let filled = held + taken;
            let whole = filled / BLOCK * BLOCK;
            self.tail.clear();
            self.tail.extend_from_slice(&buf[whole..filled]);
            if whole > 0 {
                self.write_blocks(whole, scratch)?;
            }
        }
        if !self.direct {
            self.file.write_all(bytes)?;
            self.written += bytes.len() as u64;
        }
        Ok(())
    }

    /// Writes the first `len` bytes of `scratch` (whole blocks); should the file system refuse
    /// the transfer, goes on through the cache.
    fn write_blocks(&mut self, len: usize, scratch: &mut Aligned) -> io::Result<()> {
        let blocks = &scratch.as_mut()[..len];
        match injected_refusal().and_then(|()| self.file.write_all(blocks)) {
            Ok(()) => {
                self.written += len as u64;
                Ok(())
            }
            Err(e) if refused(&e) => {
                let mut options = OpenOptions::new();
                options.write(true);
                self.file = options.open(&self.path)?;
                self.file.set_len(self.written)?;
                self.file.seek(SeekFrom::Start(self.written))?;
                self.direct = false;
                self.file.write_all(blocks)?;
                self.written += len as u64;
                let tail = std::mem::take(&mut self.tail);
                self.file.write_all(&tail)?;
                self.written += tail.len() as u64;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the last partial block (padded with zeros, then cut off the file's length).
    pub(crate) fn finish(&mut self, scratch: &mut Aligned) -> io::Result<()> {
        if self.direct && !self.tail.is_empty() {
            let length = self.written + self.tail.len() as u64;
            let held = self.tail.len();
            let buf = scratch.as_mut();
            buf[..held].copy_from_slice(&self.tail);
            buf[held..BLOCK].fill(0);
            self.tail.clear();
            self.write_blocks(BLOCK, scratch)?;
            self.file.set_len(length)?;
        }
        Ok(())
    }
}

/// A file read from the start, in transfers of [`TRANSFER`] bytes, direct where possible.
pub(crate) struct SpillReader {
    path: PathBuf,
    file: File,
    direct: bool,
    buf: Aligned,
    /// Bytes of `buf` filled, and handed out.
    filled: usize,
    pos: usize,
    /// Bytes read from the file so far, and its length.
    offset: u64,
    len: u64,
}

impl SpillReader {
    /// Opens `path`, direct where `io` asks for it and the file system takes it.
    pub(crate) fn open(path: &Path, io: SpillIo) -> io::Result<SpillReader> {
        SpillReader::open_with(path, io.direct())
    }

    fn open_with(path: &Path, direct: bool) -> io::Result<SpillReader> {
        let (file, direct) = open_direct(path, OpenOptions::new().read(true), direct)?;
        let len = file.metadata()?.len();
        Ok(SpillReader {
            path: path.to_path_buf(),
            file,
            direct,
            buf: Aligned::new(TRANSFER),
            filled: 0,
            pos: 0,
            offset: 0,
            len,
        })
    }

    /// Whether the file is read around the page cache.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct
    }

    /// Refills the buffer; should the file system refuse the direct transfer, goes on through
    /// the cache.
    fn refill(&mut self) -> io::Result<()> {
        // A direct read must start on a block: not past a short last transfer.
        if self.offset >= self.len {
            self.filled = 0;
            self.pos = 0;
            return Ok(());
        }
        let n = loop {
            let direct = self.direct;
            let buf = self.buf.as_mut();
            let read = if direct {
                injected_refusal().and_then(|()| self.file.read(buf))
            } else {
                self.file.read(buf)
            };
            match read {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && refused(&e) => {
                    self.file = File::open(&self.path)?;
                    self.file.seek(SeekFrom::Start(self.offset))?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        };
        self.offset += n as u64;
        self.filled = n;
        self.pos = 0;
        Ok(())
    }
}

impl Read for SpillReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled {
            self.refill()?;
        }
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&self.buf.as_mut()[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from one position to the next.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn round_trip(direct: bool, pieces: &[usize], scratch_len: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.arrows");
        let total: usize = pieces.iter().sum();
        let bytes = pattern(total);
        let mut scratch = Aligned::new(scratch_len);
        let mut file = SpillFile::create_with(&path, direct).unwrap();
        // Direct if asked for and the file system takes it; it stays so to the end: a
        // transfer refused for its alignment would fall back to the cache unseen.
        let opened_direct = file.is_direct();
        assert!(direct || !opened_direct);
        let mut at = 0;
        for &len in pieces {
            file.append(&bytes[at..at + len], &mut scratch).unwrap();
            at += len;
        }
        file.finish(&mut scratch).unwrap();
        assert_eq!(file.is_direct(), opened_direct);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), total as u64);

        let mut back = Vec::new();
        let mut reader = SpillReader::open_with(&path, direct).unwrap();
        // Small reads as well as large ones.
        let mut small = [0u8; 3];
        let n = reader.read(&mut small).unwrap();
        back.extend_from_slice(&small[..n]);
        reader.read_to_end(&mut back).unwrap();
        assert_eq!(reader.is_direct(), opened_direct);
        assert_eq!(back.len(), total);
        assert!(back == bytes, "the bytes read back differ");
    }

    #[test]
    fn bytes_read_back_are_the_bytes_appended() {
        for direct in [true, false] {
            round_trip(direct, &[], TRANSFER);
            round_trip(direct, &[1], TRANSFER);
            round_trip(direct, &[BLOCK - 1, 1], TRANSFER);
            round_trip(direct, &[BLOCK], TRANSFER);
            round_trip(direct, &[BLOCK + 1, 5, BLOCK * 3 - 7], TRANSFER);
            // More than a scratch buffer in one append, and more than a read transfer.
            round_trip(direct, &[3 * TRANSFER + 17, 100, 0, TRANSFER], TRANSFER);
            // A scratch buffer of one block.
            round_trip(direct, &[10_000, 3, 8_191], BLOCK);
        }
    }

    #[test]
    fn the_scratch_buffer_is_aligned() {
        for len in [BLOCK, 3 * BLOCK, TRANSFER] {
            let mut buf = Aligned::new(len);
            let slice = buf.as_mut();
            assert_eq!(slice.len(), len);
            assert_eq!(slice.as_ptr() as usize % BLOCK, 0);
        }
    }

    /// A file system that takes the flag at open, then refuses a transfer midway: the file
    /// goes on through the cache, and the bytes read back are still the bytes appended.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_transfer_refused_midway_goes_on_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.arrows");
        let bytes = pattern(5 * TRANSFER + 1234);
        let mut scratch = Aligned::new(TRANSFER);
        // Writing: the third transfer is refused.
        REFUSE_AFTER.set(Some(2));
        let mut file = SpillFile::create_with(&path, true).unwrap();
        if !file.is_direct() {
            REFUSE_AFTER.set(None);
            eprintln!("no direct transfers in the temporary folder: nothing to refuse");
            return;
        }
        for piece in bytes.chunks(TRANSFER / 3) {
            file.append(piece, &mut scratch).unwrap();
        }
        file.finish(&mut scratch).unwrap();
        assert!(!file.is_direct());
        assert_eq!(REFUSE_AFTER.get(), Some(0));
        // Reading: the second transfer is refused.
        REFUSE_AFTER.set(Some(1));
        let mut reader = SpillReader::open_with(&path, true).unwrap();
        assert!(reader.is_direct());
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        REFUSE_AFTER.set(None);
        assert!(!reader.is_direct());
        assert_eq!(back.len(), bytes.len());
        assert!(back == bytes, "the bytes read back differ");
    }

    /// Where the file system takes direct transfers (the temporary folder of Linux machines
    /// with ext4 or xfs), a spill file uses them, unless told to go through the cache.
    #[cfg(target_os = "linux")]
    #[test]
    fn direct_transfers_where_the_file_system_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        let (_, supported) = open_direct(&path, &mut options, true).unwrap();
        let file = SpillFile::create(&path, SpillIo::Direct).unwrap();
        assert_eq!(file.is_direct(), supported);
        let file = SpillFile::create(&path, SpillIo::Cached).unwrap();
        assert!(!file.is_direct());
    }
}
