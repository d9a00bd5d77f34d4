//! Cuts a binary COPY stream (`COPY ... TO STDOUT (FORMAT binary)`) into
//! payloads of at most N rows, each a complete binary COPY input of its own
//! (header, rows, trailer), without decoding any value: the rows go to the
//! target exactly as the source encoded them.
//!
//! Format: an 11-byte signature, a 32-bit flags word and a 32-bit header
//! extension length (plus the extension); then per row a 16-bit field count
//! and per field a 32-bit length (-1 for NULL) and its bytes; a field count
//! of -1 ends the stream.

use anyhow::{bail, ensure};
use bytes::{Buf, BufMut, Bytes, BytesMut};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const HEADER: usize = 19;

/// One batch: a complete COPY payload and its row count.
#[derive(Debug)]
pub struct Batch {
    pub payload: Bytes,
    pub rows: usize,
}

pub struct Splitter {
    rows_per_batch: usize,
    pending: BytesMut,
    header_done: bool,
    ended: bool,
    out: BytesMut,
    out_rows: usize,
}

impl Splitter {
    pub fn new(rows_per_batch: usize) -> Self {
        Self {
            rows_per_batch: rows_per_batch.max(1),
            pending: BytesMut::new(),
            header_done: false,
            ended: false,
            out: new_payload(),
            out_rows: 0,
        }
    }

    /// Feeds bytes from the stream; returns the batches they complete.
    pub fn push(&mut self, chunk: &[u8]) -> anyhow::Result<Vec<Batch>> {
        ensure!(!self.ended, "data after the end of the COPY stream");
        self.pending.extend_from_slice(chunk);
        let mut batches = Vec::new();
        if !self.header_done {
            if self.pending.len() < HEADER {
                return Ok(batches);
            }
            ensure!(&self.pending[..11] == SIGNATURE, "not a binary COPY stream");
            let ext = u32::from_be_bytes(self.pending[15..19].try_into()?) as usize;
            if self.pending.len() < HEADER + ext {
                return Ok(batches);
            }
            self.pending.advance(HEADER + ext);
            self.header_done = true;
        }
        while let Some(len) = self.next_row_len()? {
            let row = self.pending.split_to(len);
            self.out.put_slice(&row);
            self.out_rows += 1;
            if self.out_rows == self.rows_per_batch {
                batches.push(self.take());
            }
        }
        Ok(batches)
    }

    /// The last, partial batch (None when empty); errors on a cut stream.
    pub fn finish(mut self) -> anyhow::Result<Option<Batch>> {
        if !self.ended {
            bail!("the COPY stream ended without its trailer");
        }
        Ok((self.out_rows > 0).then(|| self.take()))
    }

    fn take(&mut self) -> Batch {
        let mut payload = std::mem::replace(&mut self.out, new_payload());
        payload.put_i16(-1);
        let rows = std::mem::take(&mut self.out_rows);
        Batch {
            payload: payload.freeze(),
            rows,
        }
    }

    /// The byte length of the next complete row in `pending`, or None when
    /// it has not all arrived (or the trailer was read).
    fn next_row_len(&mut self) -> anyhow::Result<Option<usize>> {
        let buf = &self.pending[..];
        if buf.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([buf[0], buf[1]]);
        if fields == -1 {
            self.pending.advance(2);
            self.ended = true;
            ensure!(self.pending.is_empty(), "data after the COPY trailer");
            return Ok(None);
        }
        ensure!(fields >= 0, "bad field count {fields} in the COPY stream");
        let mut at = 2;
        for _ in 0..fields {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes(buf[at..at + 4].try_into()?);
            at += 4;
            if len > 0 {
                at += len as usize;
            }
            if buf.len() < at {
                return Ok(None);
            }
        }
        Ok(Some(at))
    }
}

fn new_payload() -> BytesMut {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    buf.put_slice(SIGNATURE);
    buf.put_i32(0);
    buf.put_i32(0);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `n` rows of two fields (an int4 and a text or NULL).
    fn stream(n: i32) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_slice(SIGNATURE);
        buf.put_i32(0);
        buf.put_i32(0);
        for i in 0..n {
            buf.put_i16(2);
            buf.put_i32(4);
            buf.put_i32(i);
            if i % 3 == 0 {
                buf.put_i32(-1);
            } else {
                let text = format!("row {i}");
                buf.put_i32(text.len() as i32);
                buf.put_slice(text.as_bytes());
            }
        }
        buf.put_i16(-1);
        buf.to_vec()
    }

    fn split(data: &[u8], chunk: usize, per_batch: usize) -> Vec<Batch> {
        let mut splitter = Splitter::new(per_batch);
        let mut batches = Vec::new();
        for piece in data.chunks(chunk) {
            batches.extend(splitter.push(piece).unwrap());
        }
        batches.extend(splitter.finish().unwrap());
        batches
    }

    #[test]
    fn rows_are_cut_into_full_batches_and_a_last_partial_one_whatever_the_chunking() {
        let data = stream(10);
        for chunk in [1, 3, 7, 64, 4096] {
            let batches = split(&data, chunk, 4);
            assert_eq!(
                batches.iter().map(|b| b.rows).collect::<Vec<_>>(),
                [4, 4, 2]
            );
            // Every payload is a stream of its own: splitting it again gives it back.
            let again = split(&batches[2].payload, 5, 100);
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].payload, batches[2].payload);
        }
    }

    #[test]
    fn the_payloads_together_hold_exactly_the_original_rows() {
        let data = stream(9);
        let batches = split(&data, 13, 3);
        let body: Vec<u8> = batches
            .iter()
            .flat_map(|b| b.payload[HEADER..b.payload.len() - 2].to_vec())
            .collect();
        assert_eq!(body, data[HEADER..data.len() - 2]);
    }

    #[test]
    fn an_empty_stream_gives_no_batch() {
        assert!(split(&stream(0), 5, 3).is_empty());
    }

    #[test]
    fn a_stream_cut_short_is_an_error() {
        let data = stream(5);
        let mut splitter = Splitter::new(2);
        splitter.push(&data[..data.len() - 5]).unwrap();
        assert!(splitter.finish().is_err());
    }
}
