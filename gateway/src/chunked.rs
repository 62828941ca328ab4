//! Decoding of `aws-chunked` request bodies when auth is off.
//!
//! With auth on, s3s verifies and decodes these bodies (chunk signatures included). With auth
//! off any signature is accepted (AIStore's habit), so nothing can be verified — but a client
//! that signs its chunks still sends them framed (`<hex size>;chunk-signature=…\r\n<data>\r\n`,
//! a zero-size chunk, optional trailers, an empty line), and the framing must come off before
//! the bytes are stored. This decoder does only that; it never panics and bounds every line.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest chunk header or trailer line accepted.
const MAX_LINE: u64 = 4096;
/// Most trailer lines accepted.
const MAX_TRAILERS: usize = 16;
/// Largest piece handed on at once.
const PIECE: usize = 64 * 1024;

enum State {
    /// Expecting a chunk header line.
    Header,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    Done,
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("aws-chunked: {}", why.into()),
    )
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    (&mut *r)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if line.last() != Some(&b'\n') {
        return Err(if line.len() as u64 >= MAX_LINE {
            bad("line too long")
        } else {
            bad("body ended inside a chunk header")
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("chunk header is not UTF-8"))
}

/// Parses `<hex size>[;ext…]`.
fn chunk_size(line: &str) -> io::Result<u64> {
    let hex = line.split(';').next().unwrap_or("").trim();
    if hex.is_empty() || hex.len() > 16 {
        return Err(bad(format!("bad chunk size {hex:?}")));
    }
    u64::from_str_radix(hex, 16).map_err(|_| bad(format!("bad chunk size {hex:?}")))
}

/// The CRLF that ends a chunk's data.
async fn chunk_end<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<()> {
    match read_line(r).await? {
        l if l.is_empty() => Ok(()),
        _ => Err(bad("chunk longer than its size")),
    }
}

/// After the last chunk (size 0): trailers (checksums) up to an empty line, or the end of
/// the body.
async fn trailers<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<()> {
    for _ in 0..=MAX_TRAILERS {
        match read_line(r).await {
            Ok(l) if l.is_empty() => return Ok(()),
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Err(bad("too many trailers"))
}

fn longer_than(declared: u64) -> io::Error {
    bad(format!(
        "the chunks add up to more than the {declared} bytes declared \
         (x-amz-decoded-content-length)"
    ))
}

/// Once the declared bytes have all arrived, the body must end there: checked before the last
/// of them is handed on, as a reader that has its bytes reads no further.
async fn body_end<R: AsyncBufRead + Unpin>(r: &mut R, declared: u64) -> io::Result<()> {
    chunk_end(r).await?;
    match chunk_size(&read_line(r).await?)? {
        0 => trailers(r).await,
        _ => Err(longer_than(declared)),
    }
}

/// The decoded bytes of an `aws-chunked` body read from `r`, which declared (in
/// `x-amz-decoded-content-length`) `declared` bytes: chunks that add up to more are an error,
/// not bytes silently cut off where the declared length ends.
pub fn decode<R>(r: R, declared: u64) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    let start = (r, State::Header, 0u64);
    futures::stream::unfold(start, move |(mut r, st, mut total)| async move {
        let mut st = st;
        loop {
            match st {
                State::Done => return None,
                State::Header => match read_line(&mut r).await.and_then(|l| chunk_size(&l)) {
                    Err(e) => return Some((Err(e), (r, State::Done, total))),
                    Ok(n) if total.saturating_add(n) > declared => {
                        return Some((Err(longer_than(declared)), (r, State::Done, total)));
                    }
                    Ok(0) => {
                        return match trailers(&mut r).await {
                            Ok(()) => None,
                            Err(e) => Some((Err(e), (r, State::Done, total))),
                        };
                    }
                    Ok(n) => {
                        total += n;
                        st = State::Data(n);
                    }
                },
                State::Data(0) => match chunk_end(&mut r).await {
                    Ok(()) => st = State::Header,
                    Err(e) => return Some((Err(e), (r, State::Done, total))),
                },
                State::Data(left) => {
                    let avail = match r.fill_buf().await {
                        Ok(b) => b,
                        Err(e) => return Some((Err(e), (r, State::Done, total))),
                    };
                    if avail.is_empty() {
                        let e = bad("body ended inside a chunk");
                        return Some((Err(e), (r, State::Done, total)));
                    }
                    let n = avail.len().min(PIECE).min(left as usize);
                    let piece = BytesMut::from(&avail[..n]).freeze();
                    r.consume(n);
                    let left = left - n as u64;
                    if left == 0 && total == declared {
                        return Some(match body_end(&mut r, declared).await {
                            Ok(()) => (Ok(piece), (r, State::Done, total)),
                            Err(e) => (Err(e), (r, State::Done, total)),
                        });
                    }
                    return Some((Ok(piece), (r, State::Data(left), total)));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn run(input: &'static [u8]) -> io::Result<Vec<u8>> {
        let s = decode(tokio::io::BufReader::with_capacity(3, input), u64::MAX);
        futures::pin_mut!(s);
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn signed_chunks() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n";
        assert_eq!(run(body).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn unsigned_with_trailer() {
        let body = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        assert_eq!(run(body).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn chunks_beyond_the_declared_length_are_an_error_not_cut_off() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let run_declared = |declared| async move {
            let s = decode(tokio::io::BufReader::with_capacity(3, &body[..]), declared);
            futures::pin_mut!(s);
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                out.extend_from_slice(&b?);
            }
            io::Result::Ok(out)
        };
        assert_eq!(run_declared(11).await.unwrap(), b"hello world");
        let e = run_declared(5).await.unwrap_err().to_string();
        assert!(e.contains("more than the 5 bytes declared"), "{e}");
        // A reader that stops once it has the declared bytes is told with the last of them.
        let s = decode(tokio::io::BufReader::with_capacity(3, &body[..]), 5);
        futures::pin_mut!(s);
        let mut got = 0;
        let mut res = Ok(());
        while got < 5 {
            match s.next().await {
                Some(Ok(b)) => got += b.len(),
                Some(Err(e)) => {
                    res = Err(e);
                    break;
                }
                None => break,
            }
        }
        assert!(res.is_err(), "the extra chunk went unnoticed");
    }

    #[tokio::test]
    async fn empty_body() {
        assert_eq!(run(b"0\r\n\r\n").await.unwrap(), b"");
    }

    #[tokio::test]
    async fn bad_input_is_an_error_not_a_panic() {
        for body in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhel",
            b"3\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"5",
            b"",
        ] {
            let leaked: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
            assert!(run(leaked).await.is_err(), "{body:?}");
        }
        let long: &'static [u8] = Box::leak(vec![b'1'; 10_000].into_boxed_slice());
        assert!(run(long).await.is_err());
    }

    /// Everything `decode` yields from `input`, read through a buffer of `cap` bytes (the
    /// reader is always ready: no runtime needed).
    fn decode_all(input: Vec<u8>, cap: usize, declared: u64) -> io::Result<Vec<u8>> {
        futures::executor::block_on(async move {
            let r = tokio::io::BufReader::with_capacity(cap, std::io::Cursor::new(input));
            let s = decode(r, declared);
            futures::pin_mut!(s);
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                out.extend_from_slice(&b?);
            }
            Ok(out)
        })
    }

    /// 2,000 cases in the suite; `PROPTEST_CASES` (as `just fuzz` sets it) for longer runs.
    fn fuzz_config() -> proptest::prelude::ProptestConfig {
        match std::env::var("PROPTEST_CASES") {
            Ok(_) => Default::default(),
            Err(_) => proptest::prelude::ProptestConfig::with_cases(2000),
        }
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Hostile bodies: any bytes end in data or an error, never a panic, and never more
        /// data than arrived.
        #[test]
        fn chunked_bodies_of_any_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cap in 1usize..64,
            declared in proptest::prop_oneof![proptest::strategy::Just(u64::MAX), 0u64..600],
        ) {
            if let Ok(out) = decode_all(bytes.clone(), cap, declared) {
                proptest::prop_assert!(out.len() <= bytes.len());
                proptest::prop_assert!(out.len() as u64 <= declared);
            }
        }

        /// Any framing a client may send (chunk sizes, signatures or none, trailers or none,
        /// lower or upper case hex) decodes to exactly the data, whatever the read sizes.
        #[test]
        fn chunked_bodies_round_trip(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            sizes in proptest::collection::vec(1usize..700, 1..12),
            signed in proptest::prelude::any::<bool>(),
            upper in proptest::prelude::any::<bool>(),
            trailers in 0usize..3,
            cap in 1usize..128,
        ) {
            let ext = |w: &mut Vec<u8>| {
                if signed {
                    w.extend_from_slice(b";chunk-signature=0123abcd");
                }
                w.extend_from_slice(b"\r\n");
            };
            let mut wire = Vec::new();
            let mut rest = &data[..];
            let mut k = 0;
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                k += 1;
                let hex = if upper { format!("{n:X}") } else { format!("{n:x}") };
                wire.extend_from_slice(hex.as_bytes());
                ext(&mut wire);
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.push(b'0');
            ext(&mut wire);
            for t in 0..trailers {
                wire.extend_from_slice(format!("x-amz-trailer-{t}:abc==\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            let declared = data.len() as u64;
            proptest::prop_assert_eq!(&decode_all(wire.clone(), cap, declared).unwrap(), &data);
            // Declared one byte short: refused, not cut off.
            if let Some(short) = declared.checked_sub(1) {
                proptest::prop_assert!(decode_all(wire, cap, short).is_err());
            }
        }
    }
}
