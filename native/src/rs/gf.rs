//! GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D, generator 2), the field of
//! ISA-L and most Reed-Solomon storage codes, and the small matrix algebra the codec needs.

const POLY: u16 = 0x11D;

struct Tables {
    exp: [u8; 512],
    log: [u8; 256],
}

const fn make_tables() -> Tables {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    // exp[510], exp[511] are never read: log sums are at most 508.
    Tables { exp, log }
}

static TABLES: Tables = make_tables();

pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    TABLES.exp[TABLES.log[a as usize] as usize + TABLES.log[b as usize] as usize]
}

/// Multiplicative inverse; `a` must not be 0.
pub fn inv(a: u8) -> u8 {
    debug_assert!(a != 0);
    TABLES.exp[255 - TABLES.log[a as usize] as usize]
}

/// The full 256x256 product table, for the scalar kernel and table-driven tails.
pub fn mul_table() -> &'static [[u8; 256]; 256] {
    static TABLE: std::sync::OnceLock<Box<[[u8; 256]; 256]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([[0u8; 256]; 256]);
        for a in 0..256 {
            for b in 0..256 {
                t[a][b] = mul(a as u8, b as u8);
            }
        }
        t
    })
}

/// Row-major square matrix inverse by Gauss-Jordan elimination; None if singular.
pub fn invert(matrix: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut a = matrix.to_vec();
    let mut out = vec![0u8; n * n];
    for i in 0..n {
        out[i * n + i] = 1;
    }
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r * n + col] != 0)?;
        if pivot != col {
            for c in 0..n {
                a.swap(pivot * n + c, col * n + c);
                out.swap(pivot * n + c, col * n + c);
            }
        }
        let scale = inv(a[col * n + col]);
        for c in 0..n {
            a[col * n + c] = mul(a[col * n + c], scale);
            out[col * n + c] = mul(out[col * n + c], scale);
        }
        for r in 0..n {
            let f = a[r * n + col];
            if r == col || f == 0 {
                continue;
            }
            for c in 0..n {
                a[r * n + c] ^= mul(f, a[col * n + c]);
                out[r * n + c] ^= mul(f, out[col * n + c]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= (POLY & 0xFF) as u8;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn field_laws() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b));
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1);
            }
        }
    }

    #[test]
    fn inverse_of_inverse() {
        let m: Vec<u8> = (0..16).map(|i| inv(((i / 4) + 4) ^ (i % 4))).collect();
        let i1 = invert(&m, 4).unwrap();
        assert_eq!(invert(&i1, 4).unwrap(), m);
        assert!(invert(&[1, 2, 1, 2], 2).is_none());
    }
}
