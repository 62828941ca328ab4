//! Content checksums: xxh3-64 in lower-case hex, what [`super::object::ObjMeta::checksum`]
//! holds. Every byte of every object passes through here on a put, a checked get and a
//! rebalance, so it runs the vector code the CPU has (AVX2 where present, picked at run time),
//! not only the SSE2 a portable build assumes.

use std::hash::Hasher as _;

/// A checksum computed piece by piece.
#[derive(Clone, Default)]
pub struct Checksum(twox_hash::XxHash3_64);

impl Checksum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    /// The checksum of everything given so far, as stored.
    pub fn hex(&self) -> String {
        hex(self.0.finish())
    }
}

/// The checksum of `data`, as stored.
pub fn of(data: &[u8]) -> String {
    hex(twox_hash::XxHash3_64::oneshot(data))
}

fn hex(sum: u64) -> String {
    format!("{sum:016x}")
}

#[cfg(test)]
mod tests {
    /// Checksums already on disk stay valid: the same values as the reference xxh3-64, for
    /// every length form (short, mid, long with its stripes and tail) and however the data is
    /// split into pieces.
    #[test]
    fn checksums_are_the_reference_xxh3() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..1100).chain([4096, 65_535, 65_536, 131_072, 299_999]) {
            let d = &data[..len];
            let want = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(d));
            assert_eq!(super::of(d), want, "{len}");
            let mut c = super::Checksum::new();
            for piece in d.chunks(777) {
                c.update(piece);
            }
            assert_eq!(c.hex(), want, "{len} in pieces");
        }
    }
}
