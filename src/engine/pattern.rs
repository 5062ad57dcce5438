//! The `--verify` payload pattern: byte i of a message is a function of i
//! and a seed, so misplaced or torn data shows as mismatches.

use crate::verbs::{RegisteredBuffer, VerbsError};

const CHUNK: usize = 1 << 20;

#[inline]
fn pattern_byte(seed: u8, index: usize) -> u8 {
    // 251 is prime: the pattern does not repeat at any power-of-two stride.
    ((index % 251) as u8).wrapping_mul(7).wrapping_add(seed)
}

/// The seed both ends derive from the message size.
pub fn pattern_seed(msg_bytes: u64) -> u8 {
    (msg_bytes % 251) as u8 ^ 0x5a
}

/// Fills `len` bytes of `buffer` with the pattern of `seed`.
pub fn fill_pattern(buffer: &RegisteredBuffer, len: usize, seed: u8) -> Result<(), VerbsError> {
    let mut scratch = vec![0u8; CHUNK.min(len)];
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        for (i, byte) in scratch[..n].iter_mut().enumerate() {
            *byte = pattern_byte(seed, offset + i);
        }
        buffer.write_from(offset, &scratch[..n])?;
        offset += n;
    }
    Ok(())
}

/// Zeroes `len` bytes of `buffer`.
pub fn zero(buffer: &RegisteredBuffer, len: usize) -> Result<(), VerbsError> {
    let scratch = vec![0u8; CHUNK.min(len)];
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        buffer.write_from(offset, &scratch[..n])?;
        offset += n;
    }
    Ok(())
}

/// Counts the bytes of `buffer[..len]` that differ from the pattern.
pub fn count_mismatches(
    buffer: &RegisteredBuffer,
    len: usize,
    seed: u8,
) -> Result<u64, VerbsError> {
    let mut scratch = vec![0u8; CHUNK.min(len)];
    let mut offset = 0;
    let mut mismatches = 0;
    while offset < len {
        let n = CHUNK.min(len - offset);
        buffer.read_into(offset, &mut scratch[..n])?;
        mismatches += scratch[..n]
            .iter()
            .enumerate()
            .filter(|(i, &b)| b != pattern_byte(seed, offset + i))
            .count() as u64;
        offset += n;
    }
    Ok(mismatches)
}
