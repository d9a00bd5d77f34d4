//! Encoder for Postgres' binary COPY format, for bulk writes that skip SQL
//! parsing entirely (`COPY t (...) FROM STDIN (FORMAT binary)`).
//!
//! Format: an 11-byte signature, flags and header-extension length; then per
//! row a 16-bit field count and per field a 32-bit length (-1 for NULL)
//! followed by the value in the type's binary send format; then a -1 trailer.

use bytes::{BufMut, BytesMut};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Builds one COPY payload row by row.
#[derive(Debug)]
pub struct BinaryCopyWriter {
    buf: BytesMut,
}

impl Default for BinaryCopyWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryCopyWriter {
    pub fn new() -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.put_slice(SIGNATURE);
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        Self { buf }
    }

    pub fn begin_row(&mut self, fields: i16) -> &mut Self {
        self.buf.put_i16(fields);
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.buf.put_i32(-1);
        self
    }

    pub fn int4(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
        self
    }

    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.put_i32(1);
        self.buf.put_u8(u8::from(v));
        self
    }

    /// text, varchar: UTF-8 bytes as they are.
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.put_len(v.len());
        self.buf.put_slice(v.as_bytes());
        self
    }

    /// jsonb: a version byte (1) followed by the JSON text.
    pub fn jsonb(&mut self, json_text: &str) -> &mut Self {
        self.put_len(json_text.len() + 1);
        self.buf.put_u8(1);
        self.buf.put_slice(json_text.as_bytes());
        self
    }

    /// timestamptz: microseconds since 2000-01-01 00:00:00 UTC.
    pub fn timestamptz(&mut self, v: chrono::DateTime<chrono::Utc>) -> &mut Self {
        const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
        self.int8(v.timestamp_micros() - PG_EPOCH_OFFSET_MICROS)
    }

    /// Everything written so far, leaving the writer empty: lets one COPY
    /// stream be sent in chunks (the header goes with the first chunk).
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// The finished payload (or the last chunk), trailer included.
    pub fn finish(mut self) -> BytesMut {
        self.buf.put_i16(-1);
        self.buf
    }

    fn put_len(&mut self, len: usize) {
        // Postgres caps a field at 1 GiB, far below i32::MAX.
        self.buf
            .put_i32(i32::try_from(len).expect("COPY field larger than 2 GiB"));
    }
}
