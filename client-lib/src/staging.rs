//! Streams into and out of the STAGING memory, within an instruction budget, so a state too
//! large for one message is refused with an error instead of a trap.

use std::io;

use ic_stable_structures::Memory;

use crate::layout;
use crate::store::{self, Mem};

use vault_api::protocol::WASM_PAGE_SIZE as WASM_PAGE;

/// Instructions a serialization or deserialization may use: the 40B of an update less room for
/// the rest of the message.
pub const INSTRUCTION_BUDGET: u64 = 36_000_000_000;

/// Bytes a message may stage: the 2 GiB of stable memory an update may dirty, less room for
/// the library's own records.
pub const MAX_STAGED_BYTES: u64 = (2 << 30) - (64 << 20);

pub fn staging() -> Mem {
    store::memory(layout::STAGING)
}

/// Grows the staging memory to hold `size` bytes.
pub fn reserve(size: u64) -> bool {
    let memory = staging();
    let needed = size.div_ceil(WASM_PAGE);
    memory.size() >= needed || memory.grow(needed - memory.size()) >= 0
}

/// Why a stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Instructions,
    Bytes,
}

fn over(budget: u64) -> bool {
    ic_cdk::api::performance_counter(0) > budget
}

/// Writes the staging memory from offset 0.
#[derive(Default)]
pub struct StagingWriter {
    pub written: u64,
    pub exceeded: Option<Exceeded>,
}

impl io::Write for StagingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.written + buf.len() as u64;
        if end > MAX_STAGED_BYTES {
            self.exceeded = Some(Exceeded::Bytes);
            return Err(io::Error::other("staging limit"));
        }
        if over(INSTRUCTION_BUDGET) {
            self.exceeded = Some(Exceeded::Instructions);
            return Err(io::Error::other("instruction budget"));
        }
        if !reserve(end) {
            return Err(io::Error::other("stable memory cannot grow"));
        }
        staging().write(self.written, buf);
        self.written = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `len` staged bytes from offset 0, within an instruction budget.
pub struct StagingReader {
    pub read: u64,
    pub len: u64,
    pub exceeded: Option<Exceeded>,
    budget: u64,
}

impl StagingReader {
    /// Within an update's [`INSTRUCTION_BUDGET`].
    pub fn new(len: u64) -> Self {
        Self::within(len, INSTRUCTION_BUDGET)
    }

    pub fn within(len: u64, budget: u64) -> Self {
        StagingReader { read: 0, len, exceeded: None, budget }
    }
}

impl io::Read for StagingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if over(self.budget) {
            self.exceeded = Some(Exceeded::Instructions);
            return Err(io::Error::other("instruction budget"));
        }
        let n = (self.len - self.read).min(buf.len() as u64) as usize;
        staging().read(self.read, &mut buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
