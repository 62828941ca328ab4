//! The frame codec (DESIGN §4): a u32 big-endian length, then that many bytes, at most
//! `max_frame`. Unlike tokio-util's `LengthDelimitedCodec`, which reserves the whole announced
//! length as soon as a header arrives, this one grows its buffer only with what actually
//! arrives: a 4-byte header announcing 16 MiB costs nothing, so idle or slow clients cannot
//! make a node hold memory they never send.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest step the read buffer grows by while a frame is incomplete.
const GROW: usize = 64 * 1024;
/// Room kept for the next read between frames: a small object's reply (header and body frames,
/// about 4.3 KiB for 4 KiB) lands in one read instead of two when the last reply left the
/// buffer nearly full. Reclaimed in place once the frames handed out are dropped.
const NEXT_READ: usize = 8 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max: usize,
}

impl FrameCodec {
    pub fn new(max: usize) -> Self {
        FrameCodec { max }
    }

    /// The largest frame this codec sends or accepts.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        if src.len() < 4 {
            src.reserve(NEXT_READ);
            return Ok(None);
        }
        let n = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if n > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {n} bytes exceeds the limit of {} bytes", self.max),
            ));
        }
        if src.len() < 4 + n {
            let missing = 4 + n - src.len();
            src.reserve(missing.min(GROW));
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(n)))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        if item.len() > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the limit of {} bytes",
                    item.len(),
                    self.max
                ),
            ));
        }
        dst.reserve(4 + item.len());
        dst.put_u32(item.len() as u32);
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut c = FrameCodec::new(1024);
        let mut wire = BytesMut::new();
        for p in [&b"hello"[..], b"", b"world!"] {
            c.encode(Bytes::copy_from_slice(p), &mut wire).unwrap();
        }
        let all = wire.freeze();
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let mut out = Vec::new();
            while let Some(f) = c.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
            assert_eq!(out, vec![b"hello".to_vec(), vec![], b"world!".to_vec()]);
        }
    }

    #[test]
    fn between_frames_a_small_reply_fits_in_one_read() {
        let mut c = FrameCodec::new(1 << 20);
        let mut buf = BytesMut::with_capacity(8192);
        buf.put_u32(8000);
        buf.extend_from_slice(&[7u8; 8000]);
        let f = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.len(), 8000);
        drop(f);
        // The last frame left the buffer all but full: the next read still takes a 4 KiB
        // object's reply (header and body frames) whole.
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(buf.spare_capacity_mut().len() >= 4348, "{}", buf.capacity());
    }

    #[test]
    fn an_announced_length_reserves_only_what_arrives() {
        let mut c = FrameCodec::new(16 << 20);
        let mut buf = BytesMut::new();
        buf.put_u32(16 << 20);
        buf.extend_from_slice(b"abc");
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 4 + 3 + GROW + 64,
            "reserved {} bytes for a header",
            buf.capacity()
        );
        let mut big = BytesMut::new();
        big.put_u32(u32::MAX);
        assert!(c.decode(&mut big).is_err(), "over the limit: refused");
    }
}
