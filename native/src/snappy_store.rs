//! Raw snappy for data that does not compress: stored as literals, skipping the match search.
//!
//! A raw snappy stream is a varint of the uncompressed length and then elements; a literal element
//! is a tag byte (low bits 00) whose upper six bits hold length-1 when it is below 60, or 60/61
//! when the next one/two bytes (little endian) hold length-1. Every decoder reads a stream made of
//! literals only; snappy's own encoder emits the same when it finds no match. The search for
//! matches was a third of the cost of encoding a random (encrypted, already compressed) 64 KiB
//! vdisk block, for ~5 bytes saved; two samples of the block tell whether the search is worth it.

/// Literals are cut as snappy cuts its input, so no element is longer than a 16-bit length holds.
const CHUNK: usize = 1 << 16;
/// Each of the two samples (the start and the middle of the input).
const SAMPLE: usize = 4096;
/// Inputs smaller than this are always searched: the samples would be most of the work.
const MIN_SAMPLED_INPUT: usize = 4 * SAMPLE;

fn compress(data: &[u8], out: &mut [u8]) -> Result<usize, snap::Error> {
    snap::raw::Encoder::new().compress(data, out)
}

/// Whether compressing `sample` (into `scratch`) saves less than 1/32 of it.
fn incompressible(sample: &[u8], scratch: &mut [u8]) -> Result<bool, snap::Error> {
    Ok(compress(sample, scratch)? > sample.len() - sample.len() / 32)
}

/// Compresses `data` into `out` (at least max_compress_len(data.len()) bytes), or, when neither
/// sample compresses, writes it as literals. Returns the length written.
pub fn compress_or_store(data: &[u8], out: &mut [u8]) -> Result<usize, snap::Error> {
    if data.len() >= MIN_SAMPLED_INPUT {
        let middle = data.len() / 2;
        // The samples compress into `out`, which is overwritten next either way.
        if incompressible(&data[..SAMPLE], out)? && incompressible(&data[middle..middle + SAMPLE], out)? {
            return Ok(store(data, out));
        }
    }
    compress(data, out)
}

/// `data` as a raw snappy stream of literals.
fn store(data: &[u8], out: &mut [u8]) -> usize {
    let mut d = write_varint(out, data.len() as u64);
    for chunk in data.chunks(CHUNK) {
        let n = chunk.len() - 1;
        if n < 60 {
            out[d] = (n as u8) << 2;
            d += 1;
        } else if n < 256 {
            out[d] = 60 << 2;
            out[d + 1] = n as u8;
            d += 2;
        } else {
            out[d] = 61 << 2;
            out[d + 1..d + 3].copy_from_slice(&(n as u16).to_le_bytes());
            d += 3;
        }
        copy_downwards(chunk, &mut out[d..d + chunk.len()]);
        d += chunk.len();
    }
    d
}

/// Copies `src` into `dst` (same length) from the end to the start. A forward copy whose
/// destination lies a few bytes past its source modulo 4 KiB, as here whenever the input and the
/// output buffer start at the same offset in a page (the stream's header puts the literal bytes
/// 5-6 bytes in), stalls on every load (4K aliasing: each looks like it may read a store still in
/// flight): ~20 µs instead of ~2 µs per 64 KiB. Going down, every load is below the stores before it.
fn copy_downwards(src: &[u8], dst: &mut [u8]) {
    const STEP: usize = 64;
    let mut end = src.len();
    while end >= STEP {
        dst[end - STEP..end].copy_from_slice(&src[end - STEP..end]);
        end -= STEP;
    }
    dst[..end].copy_from_slice(&src[..end]);
}

fn write_varint(out: &mut [u8], mut n: u64) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9e3779b97f4a7c15u64;
        (0..n).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect()
    }

    fn roundtrip(data: &[u8]) -> usize {
        let mut out = vec![0u8; snap::raw::max_compress_len(data.len())];
        let n = compress_or_store(data, &mut out).unwrap();
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&out[..n]).unwrap(), data);
        n
    }

    #[test]
    fn noise_is_stored_as_literals_and_decodes() {
        for len in [MIN_SAMPLED_INPUT, 65536, 65537, 200_000] {
            let data = noise(len);
            let tags: usize = data.chunks(CHUNK).map(|c| if c.len() <= 60 { 1 } else if c.len() <= 256 { 2 } else { 3 }).sum();
            let header = if len < 1 << 14 { 2 } else { 3 };
            assert_eq!(roundtrip(&data), header + len + tags, "len {len}");
        }
    }

    #[test]
    fn compressible_data_is_compressed_even_after_a_noisy_start() {
        let mut data = noise(65536);
        data[SAMPLE..].fill(7); // only the first sample is noise
        assert!(roundtrip(&data) < 8000);
        assert!(roundtrip(&[7u8; 65536]) < 4000);
    }

    #[test]
    fn small_inputs_are_always_searched() {
        let data = noise(MIN_SAMPLED_INPUT - 1);
        let mut out = vec![0u8; snap::raw::max_compress_len(data.len())];
        let mut plain = vec![0u8; out.len()];
        let n = compress_or_store(&data, &mut out).unwrap();
        let m = compress(&data, &mut plain).unwrap();
        assert_eq!(out[..n], plain[..m]);
    }

    #[test]
    fn the_downward_copy_copies_every_length() {
        for len in [0usize, 1, 63, 64, 65, 127, 128, 4097] {
            let src = noise(len);
            let mut dst = vec![0u8; len];
            copy_downwards(&src, &mut dst);
            assert_eq!(dst, src);
        }
    }

    #[test]
    fn short_literal_lengths_use_the_short_tags() {
        let mut out = [0u8; 400];
        for len in [1usize, 59, 60, 61, 255, 256, 257] {
            let data = noise(len);
            let n = store(&data, &mut out);
            assert_eq!(snap::raw::Decoder::new().decompress_vec(&out[..n]).unwrap(), data, "len {len}");
        }
    }
}
