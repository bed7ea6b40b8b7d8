//! The one hot loop of Reed-Solomon: `out[r] = XOR over j of coeff[r][j] * in[j]`, bytewise over
//! GF(2^8), for several outputs at once so each input byte is loaded once per group of outputs.
//!
//! Every CPU path gives identical bytes; they differ only in how a byte is multiplied by a
//! constant:
//! - gfni-avx512: one `vgf2p8affineqb` per 64 bytes, the constant expressed as an 8x8 bit matrix;
//! - avx2 / ssse3: two `pshufb` lookups (low and high nibble) per 32 / 16 bytes;
//! - scalar: a 256x256 product table.
use super::gf;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    GfniAvx512,
    Avx2,
    Ssse3,
    Scalar,
}

/// Columns handled per pass when the outputs need more than one group: keeps that stretch of
/// every input in L1/L2 while the next group of outputs reads it again.
const BLOCK: usize = 16 * 1024;

impl Path {
    /// Fastest first.
    pub const ALL: [Path; 4] = [Path::GfniAvx512, Path::Avx2, Path::Ssse3, Path::Scalar];

    pub fn name(self) -> &'static str {
        match self {
            Path::GfniAvx512 => "gfni-avx512",
            Path::Avx2 => "avx2",
            Path::Ssse3 => "ssse3",
            Path::Scalar => "scalar",
        }
    }

    pub fn from_name(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Path::GfniAvx512 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("gfni"),
                Path::Avx2 => is_x86_feature_detected!("avx2"),
                Path::Ssse3 => is_x86_feature_detected!("ssse3"),
                Path::Scalar => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Path::Scalar
        }
    }

    /// The fastest path this CPU runs.
    pub fn best() -> Path {
        static BEST: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Path::ALL.into_iter().find(|p| p.supported()).unwrap_or(Path::Scalar))
    }

    /// Bytes per vector; the remainder of a shard is done with the table.
    fn width(self) -> usize {
        match self {
            Path::GfniAvx512 => 64,
            Path::Avx2 => 32,
            Path::Ssse3 => 16,
            Path::Scalar => usize::MAX,
        }
    }

    /// Outputs accumulated in registers per pass.
    fn group(self) -> usize {
        match self {
            Path::GfniAvx512 => 8,
            Path::Avx2 | Path::Ssse3 => 4,
            Path::Scalar => 1,
        }
    }
}

/// `outputs[r] = XOR_j coeffs[r * k + j] * inputs[j]` where k = inputs.len(). All slices have the
/// same length; `path` must be supported by this CPU.
pub fn combine(path: Path, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    let (k, rows) = (inputs.len(), outputs.len());
    assert_eq!(coeffs.len(), k * rows, "coefficient matrix shape");
    assert!(path.supported(), "path {} not supported by this CPU", path.name());
    let len = inputs.first().map_or(0, |s| s.len());
    assert!(inputs.iter().all(|s| s.len() == len) && outputs.iter().all(|s| s.len() == len), "shard lengths differ");
    if rows == 0 {
        return;
    }
    if k == 0 {
        outputs.iter_mut().for_each(|o| o.fill(0));
        return;
    }
    let ins: Vec<*const u8> = inputs.iter().map(|s| s.as_ptr()).collect();
    let outs: Vec<*mut u8> = outputs.iter_mut().map(|s| s.as_mut_ptr()).collect();
    let vector_end = if path == Path::Scalar { 0 } else { len / path.width() * path.width() };
    let tables = VectorTables::new(path, coeffs);
    let group = path.group();
    let mut start = 0;
    while start < vector_end {
        let end = vector_end.min(start + BLOCK);
        for g0 in (0..rows).step_by(group) {
            let g1 = rows.min(g0 + group);
            // SAFETY: the pointers come from slices of `len >= end` bytes, outputs do not overlap
            // inputs (distinct borrows), and the path is supported (asserted above).
            unsafe { tables.run(g0, g1, k, &ins, &outs[g0..g1], start, end) };
        }
        start = end;
    }
    unsafe { scalar_rows(coeffs, &ins, &outs, vector_end, len) };
}

/// Per-coefficient constants in the form each path consumes, built once per call.
enum VectorTables {
    /// One 8x8 bit matrix per coefficient.
    Gfni(Vec<u64>),
    /// Per coefficient: products of the 16 low nibbles, then of the 16 high nibbles.
    Nibbles(Path, Vec<[u8; 32]>),
    None,
}

impl VectorTables {
    fn new(path: Path, coeffs: &[u8]) -> Self {
        match path {
            Path::GfniAvx512 => VectorTables::Gfni(coeffs.iter().map(|&c| gfni_matrix(c)).collect()),
            Path::Avx2 | Path::Ssse3 => VectorTables::Nibbles(path, coeffs.iter().map(|&c| nibble_tables(c)).collect()),
            Path::Scalar => VectorTables::None,
        }
    }

    /// Rows g0..g1 over columns start..end (a multiple of the path's width).
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(&self, g0: usize, g1: usize, k: usize, ins: &[*const u8], outs: &[*mut u8], start: usize, end: usize) {
        macro_rules! by_group {
            ($f:ident, $t:expr) => {
                match g1 - g0 {
                    1 => $f::<1>($t, k, ins, outs, start, end),
                    2 => $f::<2>($t, k, ins, outs, start, end),
                    3 => $f::<3>($t, k, ins, outs, start, end),
                    4 => $f::<4>($t, k, ins, outs, start, end),
                    5 => $f::<5>($t, k, ins, outs, start, end),
                    6 => $f::<6>($t, k, ins, outs, start, end),
                    7 => $f::<7>($t, k, ins, outs, start, end),
                    8 => $f::<8>($t, k, ins, outs, start, end),
                    n => unreachable!("group of {n} outputs"),
                }
            };
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            VectorTables::Gfni(m) => by_group!(gfni_avx512, &m[g0 * k..g1 * k]),
            #[cfg(target_arch = "x86_64")]
            VectorTables::Nibbles(Path::Avx2, t) => by_group!(avx2, &t[g0 * k..g1 * k]),
            #[cfg(target_arch = "x86_64")]
            VectorTables::Nibbles(_, t) => by_group!(ssse3, &t[g0 * k..g1 * k]),
            _ => unreachable!("no vector tables for this path"),
        }
    }
}

/// The GF2P8AFFINEQB matrix for multiplication by `c`: output bit i of a byte is the parity of
/// (matrix byte 7-i AND input byte), and bit j of that row byte is bit i of c * 2^j.
fn gfni_matrix(c: u8) -> u64 {
    let mut m = 0u64;
    for i in 0..8 {
        let row = (0..8).fold(0u8, |row, j| row | (((gf::mul(c, 1 << j) >> i) & 1) << j));
        m |= (row as u64) << (8 * (7 - i));
    }
    m
}

fn nibble_tables(c: u8) -> [u8; 32] {
    let mut t = [0u8; 32];
    for n in 0..16u8 {
        t[n as usize] = gf::mul(c, n);
        t[16 + n as usize] = gf::mul(c, n << 4);
    }
    t
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn gfni_avx512<const G: usize>(mats: &[u64], k: usize, ins: &[*const u8], outs: &[*mut u8], start: usize, end: usize) {
    let mut pos = start;
    while pos < end {
        let mut acc = [_mm512_setzero_si512(); G];
        for j in 0..k {
            let x = _mm512_loadu_si512((*ins.get_unchecked(j)).add(pos) as *const _);
            for (g, a) in acc.iter_mut().enumerate() {
                let m = _mm512_set1_epi64(*mats.get_unchecked(g * k + j) as i64);
                *a = _mm512_xor_si512(*a, _mm512_gf2p8affine_epi64_epi8::<0>(x, m));
            }
        }
        for (g, a) in acc.iter().enumerate() {
            _mm512_storeu_si512((*outs.get_unchecked(g)).add(pos) as *mut _, *a);
        }
        pos += 64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<const G: usize>(tables: &[[u8; 32]], k: usize, ins: &[*const u8], outs: &[*mut u8], start: usize, end: usize) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut pos = start;
    while pos < end {
        let mut acc = [_mm256_setzero_si256(); G];
        for j in 0..k {
            let x = _mm256_loadu_si256((*ins.get_unchecked(j)).add(pos) as *const __m256i);
            let lo = _mm256_and_si256(x, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi64::<4>(x), mask);
            for (g, a) in acc.iter_mut().enumerate() {
                let t = tables.get_unchecked(g * k + j).as_ptr();
                let tlo = _mm256_broadcastsi128_si256(_mm_loadu_si128(t as *const __m128i));
                let thi = _mm256_broadcastsi128_si256(_mm_loadu_si128(t.add(16) as *const __m128i));
                let p = _mm256_xor_si256(_mm256_shuffle_epi8(tlo, lo), _mm256_shuffle_epi8(thi, hi));
                *a = _mm256_xor_si256(*a, p);
            }
        }
        for (g, a) in acc.iter().enumerate() {
            _mm256_storeu_si256((*outs.get_unchecked(g)).add(pos) as *mut __m256i, *a);
        }
        pos += 32;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn ssse3<const G: usize>(tables: &[[u8; 32]], k: usize, ins: &[*const u8], outs: &[*mut u8], start: usize, end: usize) {
    let mask = _mm_set1_epi8(0x0f);
    let mut pos = start;
    while pos < end {
        let mut acc = [_mm_setzero_si128(); G];
        for j in 0..k {
            let x = _mm_loadu_si128((*ins.get_unchecked(j)).add(pos) as *const __m128i);
            let lo = _mm_and_si128(x, mask);
            let hi = _mm_and_si128(_mm_srli_epi64::<4>(x), mask);
            for (g, a) in acc.iter_mut().enumerate() {
                let t = tables.get_unchecked(g * k + j).as_ptr();
                let tlo = _mm_loadu_si128(t as *const __m128i);
                let thi = _mm_loadu_si128(t.add(16) as *const __m128i);
                let p = _mm_xor_si128(_mm_shuffle_epi8(tlo, lo), _mm_shuffle_epi8(thi, hi));
                *a = _mm_xor_si128(*a, p);
            }
        }
        for (g, a) in acc.iter().enumerate() {
            _mm_storeu_si128((*outs.get_unchecked(g)).add(pos) as *mut __m128i, *a);
        }
        pos += 16;
    }
}

/// Columns start..end of every output with the product table (the scalar path, and the tail
/// shorter than one vector on the others).
unsafe fn scalar_rows(coeffs: &[u8], ins: &[*const u8], outs: &[*mut u8], start: usize, end: usize) {
    if start >= end {
        return;
    }
    let table = gf::mul_table();
    let k = ins.len();
    let n = end - start;
    for (r, &o) in outs.iter().enumerate() {
        let out = std::slice::from_raw_parts_mut(o.add(start), n);
        out.fill(0);
        for (j, &i) in ins.iter().enumerate() {
            let row = &table[coeffs[r * k + j] as usize];
            let input = std::slice::from_raw_parts(i.add(start), n);
            for (d, &s) in out.iter_mut().zip(input) {
                *d ^= row[s as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfni_matrix_multiplies() {
        // Apply the matrix by its definition and compare with the field product.
        for c in 0..=255u8 {
            let m = gfni_matrix(c);
            for x in 0..=255u8 {
                let mut y = 0u8;
                for i in 0..8 {
                    let row = (m >> (8 * (7 - i))) as u8;
                    y |= (((row & x).count_ones() & 1) as u8) << i;
                }
                assert_eq!(y, gf::mul(c, x));
            }
        }
    }

    #[test]
    fn all_supported_paths_agree() {
        let k = 7;
        let len = 64 * 600 + 37;
        let inputs: Vec<Vec<u8>> = (0..k).map(|j| (0..len).map(|i| (i * 31 + j * 17 + i / 7) as u8).collect()).collect();
        let ins: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        for rows in [1, 3, 8, 11] {
            let coeffs: Vec<u8> = (0..rows * k).map(|i| (i * 73 + 5) as u8).collect();
            let mut want = vec![vec![0u8; len]; rows];
            combine(Path::Scalar, &coeffs, &ins, &mut want.iter_mut().map(|v| v.as_mut_slice()).collect::<Vec<_>>());
            for path in Path::ALL.into_iter().filter(|p| p.supported()) {
                let mut got = vec![vec![0xAAu8; len]; rows];
                combine(path, &coeffs, &ins, &mut got.iter_mut().map(|v| v.as_mut_slice()).collect::<Vec<_>>());
                assert_eq!(got, want, "path {}", path.name());
            }
        }
    }
}
