// A deliberately slow, independent Reed-Solomon encoder to check the native one against:
// bit-by-bit GF(2^8) multiplication (polynomial 0x11D), inverses by search, and the systematic
// Cauchy parity rows 1 / ((k + i) xor j) of ISA-L's gf_gen_cauchy1_matrix.

export function gfMul(a: number, b: number): number {
  let p = 0;
  for (let bit = 0; bit < 8; bit++) {
    if (b & (1 << bit)) p ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11d;
  }
  return p;
}

const inverses: number[] = [0];
for (let a = 1; a < 256; a++) {
  for (let b = 1; b < 256; b++) {
    if (gfMul(a, b) === 1) {
      inverses[a] = b;
      break;
    }
  }
}

export function gfInv(a: number): number {
  if (a === 0) throw new RangeError("0 has no inverse");
  return inverses[a];
}

/** Parity row i (0-based) of the generator for k data shards. */
export function parityRow(k: number, i: number): number[] {
  return Array.from({ length: k }, (_, j) => gfInv((k + i) ^ j));
}

export function referenceEncode(k: number, m: number, data: Uint8Array[]): Uint8Array[] {
  const len = data[0]?.length ?? 0;
  return Array.from({ length: m }, (_, i) => {
    const row = parityRow(k, i);
    const out = new Uint8Array(len);
    for (let j = 0; j < k; j++) {
      for (let x = 0; x < len; x++) out[x] ^= gfMul(row[j], data[j][x]);
    }
    return out;
  });
}
