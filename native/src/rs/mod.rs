//! Systematic Reed-Solomon erasure coding over GF(2^8): k data shards, m parity shards,
//! k + m <= 256. Any k of the k + m shards rebuild the rest.
//!
//! Generator matrix ((k+m) x k): the identity over a Cauchy block with row k+i, column j equal to
//! 1 / ((k+i) xor j) in GF(2^8)/0x11D. This is ISA-L's `gf_gen_cauchy1_matrix`, so parity is byte
//! for byte what ISA-L computes with that matrix. Every k x k submatrix of it is invertible, which
//! is what makes any k shards enough.
pub mod gf;
pub mod kernels;

pub use kernels::Path;

pub const MAX_SHARDS: usize = 256;

/// The m x k Cauchy block (row-major): parity p = sum_j parity_matrix[p][j] * data_j.
pub fn parity_matrix(k: usize, m: usize) -> Vec<u8> {
    assert!(k >= 1 && k + m <= MAX_SHARDS, "k = {k}, m = {m}");
    (k..k + m).flat_map(|i| (0..k).map(move |j| gf::inv((i ^ j) as u8))).collect()
}

/// Row `index` of the full generator matrix, given its parity block.
fn generator_row(k: usize, parity: &[u8], index: usize) -> Vec<u8> {
    if index < k {
        (0..k).map(|j| (j == index) as u8).collect()
    } else {
        parity[(index - k) * k..(index - k + 1) * k].to_vec()
    }
}

pub fn encode(path: Path, k: usize, m: usize, data: &[&[u8]], parity: &mut [&mut [u8]]) {
    assert!(data.len() == k && parity.len() == m);
    kernels::combine(path, &parity_matrix(k, m), data, parity);
}

/// How to rebuild missing shards: each is a combination of `sources` (k present shards).
#[derive(Debug)]
pub struct RebuildPlan {
    pub sources: Vec<usize>,
    pub missing: Vec<usize>,
    /// missing.len() x k, row-major.
    pub coeffs: Vec<u8>,
}

/// The plan for the shards whose `present` flag is false; None if fewer than k are present.
pub fn rebuild_plan(k: usize, m: usize, present: &[bool]) -> Option<RebuildPlan> {
    assert_eq!(present.len(), k + m);
    // The first k present shards: all data shards when they are there, making the decode the identity.
    let sources: Vec<usize> = (0..k + m).filter(|&i| present[i]).take(k).collect();
    if sources.len() < k {
        return None;
    }
    let missing: Vec<usize> = (0..k + m).filter(|&i| !present[i]).collect();
    let parity = parity_matrix(k, m);
    let sub: Vec<u8> = sources.iter().flat_map(|&s| generator_row(k, &parity, s)).collect();
    let decode = gf::invert(&sub, k).expect("every k x k submatrix of a Cauchy generator is invertible");
    let mut coeffs = Vec::with_capacity(missing.len() * k);
    for &i in &missing {
        // data_i = decode[i] . sources; any shard = generator_row . data = (generator_row x decode) . sources.
        let row = generator_row(k, &parity, i);
        coeffs.extend((0..k).map(|c| (0..k).fold(0u8, |acc, t| acc ^ gf::mul(row[t], decode[t * k + c]))));
    }
    Some(RebuildPlan { sources, missing, coeffs })
}

pub fn reconstruct(path: Path, plan: &RebuildPlan, sources: &[&[u8]], rebuilt: &mut [&mut [u8]]) {
    assert!(sources.len() == plan.sources.len() && rebuilt.len() == plan.missing.len());
    kernels::combine(path, &plan.coeffs, sources, rebuilt);
}

/// Whether the parity shards (shards[k..]) match the data shards (shards[..k]).
pub fn verify(path: Path, k: usize, m: usize, shards: &[&[u8]]) -> bool {
    const CHUNK: usize = 64 * 1024;
    assert_eq!(shards.len(), k + m);
    let len = shards[0].len();
    let matrix = parity_matrix(k, m);
    let mut scratch = vec![vec![0u8; CHUNK.min(len)]; m];
    let mut start = 0;
    while start < len {
        let n = CHUNK.min(len - start);
        let data: Vec<&[u8]> = shards[..k].iter().map(|s| &s[start..start + n]).collect();
        let mut out: Vec<&mut [u8]> = scratch.iter_mut().map(|s| &mut s[..n]).collect();
        kernels::combine(path, &matrix, &data, &mut out);
        if (0..m).any(|p| scratch[p][..n] != shards[k + p][start..start + n]) {
            return false;
        }
        start += n;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_shards_rebuild_everything() {
        let (k, m, len) = (5, 3, 1000);
        let data: Vec<Vec<u8>> = (0..k).map(|j| (0..len).map(|i| (i * 13 + j * 101) as u8).collect()).collect();
        let mut parity = vec![vec![0u8; len]; m];
        let dref: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        encode(Path::best(), k, m, &dref, &mut parity.iter_mut().map(|v| v.as_mut_slice()).collect::<Vec<_>>());
        let all: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        let allref: Vec<&[u8]> = all.iter().map(|v| v.as_slice()).collect();
        assert!(verify(Path::best(), k, m, &allref));
        // Every subset of missing shards of size <= m.
        for mask in 0u32..(1 << (k + m)) {
            if mask.count_ones() as usize > m {
                continue;
            }
            let present: Vec<bool> = (0..k + m).map(|i| mask & (1 << i) == 0).collect();
            let plan = rebuild_plan(k, m, &present).unwrap();
            let sources: Vec<&[u8]> = plan.sources.iter().map(|&s| all[s].as_slice()).collect();
            let mut rebuilt = vec![vec![0u8; len]; plan.missing.len()];
            reconstruct(Path::best(), &plan, &sources, &mut rebuilt.iter_mut().map(|v| v.as_mut_slice()).collect::<Vec<_>>());
            for (r, &i) in plan.missing.iter().enumerate() {
                assert_eq!(rebuilt[r], all[i], "shard {i} with mask {mask:b}");
            }
        }
        assert!(rebuild_plan(k, m, &[false, false, false, false, true, true, true, true]).is_none());
    }
}
