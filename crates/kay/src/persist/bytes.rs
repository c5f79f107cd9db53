//! Little-endian encoding of a snapshot's small state (everything but the
//! instance stores, which are copied as they are): a writer, and a reader
//! that checks every length against what is left, so that damaged or
//! planted bytes end in an error, never in a panic or a huge allocation.

/// Appends little-endian values.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn len(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub(crate) fn slice(&mut self, v: &[u8]) {
        self.len(v.len());
        self.bytes.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.slice(v.as_bytes());
    }
    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        for &x in v {
            self.u32(x);
        }
    }
    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        for &x in v {
            self.u64(x);
        }
    }
}

/// Reads what a [`Writer`] wrote; every error says what was being read.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Why bytes could not be read (the caller adds the file).
pub(crate) type ReadResult<T> = Result<T, String>;

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> ReadResult<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "ends early while reading {what} (at byte {} of {})",
                self.at,
                self.bytes.len()
            ));
        };
        let part = &self.bytes[self.at..end];
        self.at = end;
        Ok(part)
    }

    pub(crate) fn u8(&mut self, what: &str) -> ReadResult<u8> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &str) -> ReadResult<u16> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn u32(&mut self, what: &str) -> ReadResult<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn u64(&mut self, what: &str) -> ReadResult<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of items of at least `item_bytes` bytes each: never more
    /// than the bytes left could hold.
    pub(crate) fn len(&mut self, item_bytes: usize, what: &str) -> ReadResult<usize> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(item_bytes.max(1) as u64) > left {
            return Err(format!("{what}: {n} items claimed, {left} bytes left"));
        }
        Ok(n as usize)
    }
    pub(crate) fn slice(&mut self, what: &str) -> ReadResult<&'a [u8]> {
        let n = self.len(1, what)?;
        self.take(n, what)
    }
    pub(crate) fn str(&mut self, what: &str) -> ReadResult<&'a str> {
        std::str::from_utf8(self.slice(what)?).map_err(|_| format!("{what} is not UTF-8"))
    }
    pub(crate) fn u32s(&mut self, what: &str) -> ReadResult<Vec<u32>> {
        let n = self.len(4, what)?;
        (0..n).map(|_| self.u32(what)).collect()
    }
    pub(crate) fn u64s(&mut self, what: &str) -> ReadResult<Vec<u64>> {
        let n = self.len(8, what)?;
        (0..n).map(|_| self.u64(what)).collect()
    }

    /// Checks that nothing is left.
    pub(crate) fn finish(&self, what: &str) -> ReadResult<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes left over after {what}",
                self.bytes.len() - self.at
            ))
        }
    }
}
