//! Reading a file that may or may not be gzip-compressed, with every failure
//! turned into a [`DataError`] that names the path and the byte offset.
//!
//! Compression is detected by the gzip magic bytes `1f 8b`, not by the file
//! name: datasets get renamed, and `foo.gz` that was already decompressed by a
//! browser is a common sight.

use std::fs::File;
use std::io::{self, BufReader, Cursor, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::DataError;

/// The most payload bytes one file may declare. A header is only a promise:
/// a few hundred bytes of gzip can inflate to terabytes, so anything above
/// this is refused before reading, and anything below is read without
/// trusting the promise (see [`Stream::read_payload`]).
pub(crate) const MAX_PAYLOAD_BYTES: u64 = if usize::BITS >= 64 { 1 << 34 } else { 1 << 30 };

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decompressed byte stream that tracks its offset for error messages.
pub(crate) struct Stream<'a> {
    inner: Box<dyn Read + 'a>,
    compressed: bool,
    path: PathBuf,
    offset: u64,
}

impl<'a> Stream<'a> {
    /// Wraps `reader`, decompressing it if it starts with the gzip magic.
    /// `path` is only used in error messages.
    pub(crate) fn new<R: Read + 'a>(mut reader: R, path: &Path) -> Result<Self, DataError> {
        let mut head = [0u8; 2];
        let n = read_up_to(&mut reader, &mut head).map_err(|e| DataError::io(path, e))?;
        // Put the peeked bytes back in front of the rest of the stream.
        let whole = Cursor::new(head[..n].to_vec()).chain(reader);
        let compressed = head[..n] == GZIP_MAGIC;
        let inner: Box<dyn Read + 'a> = if compressed {
            Box::new(GzDecoder::new(whole))
        } else {
            Box::new(whole)
        };
        Ok(Stream {
            inner,
            compressed,
            path: path.to_path_buf(),
            offset: 0,
        })
    }

    /// The path this stream reports in its errors.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far from the decompressed stream.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Fills as much of `buf` as the stream allows; returns the count
    /// (smaller than `buf.len()` only at the end of the stream).
    pub(crate) fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let n = read_up_to(&mut self.inner, buf).map_err(|e| self.read_error(e))?;
        self.offset += n as u64;
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes, or reports the structure starting at
    /// the current offset as truncated.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DataError> {
        let start = self.offset;
        let n = self.read_up_to(buf)?;
        if n < buf.len() {
            return Err(DataError::Truncated {
                path: self.path.clone(),
                offset: start,
                expected: buf.len() as u64,
                available: n as u64,
            });
        }
        Ok(())
    }

    /// Reads the rest of the stream, which the header says holds exactly
    /// `promised` bytes.
    ///
    /// The buffer grows with the bytes that actually arrive, never with the
    /// promise, and at most `promised + 1` bytes are decompressed: one extra
    /// byte is enough to tell "trailing garbage" from "exact", and nothing a
    /// lying header says can make this allocate more than the data holds.
    pub(crate) fn read_payload(&mut self, promised: u128) -> Result<Vec<u8>, DataError> {
        if promised > u128::from(MAX_PAYLOAD_BYTES) {
            return Err(DataError::TooLarge {
                path: self.path.clone(),
                promised,
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let promised = promised as u64; // fits: checked against the limit above
        let start = self.offset;
        let mut payload = Vec::new();
        let result = (&mut self.inner)
            .take(promised + 1)
            .read_to_end(&mut payload);
        self.offset += payload.len() as u64;
        result.map_err(|e| self.read_error(e))?;
        let got = payload.len() as u64;
        if got < promised {
            return Err(DataError::HeaderTooLarge {
                path: self.path.clone(),
                promised: u128::from(promised),
                available: got,
            });
        }
        if got > promised {
            return Err(DataError::invalid(
                &self.path,
                format!(
                    "trailing bytes at byte offset {}, after the {promised} bytes the header declares",
                    start + promised
                ),
            ));
        }
        Ok(payload)
    }

    /// A read failure inside a gzip stream is almost always corrupt
    /// compressed data, which deserves a "cannot decode" rather than an I/O
    /// message; for raw files it is a genuine I/O error.
    fn read_error(&self, e: io::Error) -> DataError {
        if self.compressed {
            DataError::Decode {
                path: self.path.clone(),
                message: format!(
                    "gzip stream broken near decompressed byte {}: {e}",
                    self.offset
                ),
            }
        } else {
            DataError::io(&self.path, e)
        }
    }
}

/// Opens `path` for buffered reading. The parsers take any `Read` (so tests
/// and callers can feed them bytes from memory); this is their file source.
pub(crate) fn open_reader(path: &Path) -> Result<BufReader<File>, DataError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| DataError::io(path, e))
}

/// `read` in a loop until `buf` is full or the reader is exhausted.
fn read_up_to<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_and_gzip_read_the_same_bytes() {
        let data: Vec<u8> = (0..=255).collect();
        for input in [data.clone(), gzip(&data)] {
            let mut s = Stream::new(&input[..], Path::new("x")).unwrap();
            assert_eq!(s.read_payload(256).unwrap(), data);
        }
    }

    #[test]
    fn payload_shorter_than_promised_is_reported() {
        let mut s = Stream::new(&[1u8, 2, 3][..], Path::new("x")).unwrap();
        match s.read_payload(10) {
            Err(DataError::HeaderTooLarge { available: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_promise_is_refused_before_reading() {
        let mut s = Stream::new(&[0u8; 4][..], Path::new("x")).unwrap();
        assert!(matches!(
            s.read_payload(u128::from(u64::MAX) * 4),
            Err(DataError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_is_a_decode_error() {
        let mut bytes = gzip(&[7u8; 1000]);
        let n = bytes.len();
        bytes.truncate(n / 2);
        let mut s = Stream::new(&bytes[..], Path::new("x.gz")).unwrap();
        assert!(matches!(
            s.read_payload(1000),
            Err(DataError::Decode { .. })
        ));
    }
}
