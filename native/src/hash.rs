//! JS bindings for BLAKE3 (one-shot, keyed, XOF, streaming, rayon-parallel), BLAKE2b and CRC-32C.
//! Inputs are read in place from the caller's Uint8Array: nothing is copied on the way in.
use crate::crc32c::crc32c;
use crate::napi::{napi_callback_info, napi_env, napi_value, range_err, Env, JsResult};

/// Longest BLAKE3 output we hand out in one call; the XOF is unbounded but a JS caller asking
/// for more than this has a bug.
const MAX_XOF_LEN: f64 = (1u64 << 30) as f64;

fn blake3_key(env: &Env, v: napi_value) -> JsResult<Option<[u8; 32]>> {
    if env.is_nullish(v)? {
        return Ok(None);
    }
    let key = unsafe { env.bytes(v, "key")?.as_slice() };
    match <[u8; 32]>::try_from(key) {
        Ok(k) => Ok(Some(k)),
        Err(_) => range_err(format!("key must be 32 bytes, got {}", key.len())),
    }
}

fn new_hasher(key: Option<[u8; 32]>) -> blake3::Hasher {
    match key {
        Some(k) => blake3::Hasher::new_keyed(&k),
        None => blake3::Hasher::new(),
    }
}

fn blake3_output(env: &Env, hasher: &blake3::Hasher, out_len: u64) -> JsResult<napi_value> {
    let (v, out) = env.new_uint8array(out_len as usize)?;
    hasher.finalize_xof().fill(unsafe { out.as_mut_slice() });
    Ok(v)
}

/// blake3(data, key?, outLength?)
pub unsafe extern "C" fn js_blake3(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, key, out_len] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let key = blake3_key(env, key)?;
        let out_len = env.optional_integer(out_len, "outLength", 1.0, MAX_XOF_LEN, 32)?;
        if out_len == 32 {
            let hash = match key {
                Some(k) => blake3::keyed_hash(&k, data),
                None => blake3::hash(data),
            };
            return env.uint8array_from(hash.as_bytes());
        }
        let mut h = new_hasher(key);
        h.update(data);
        blake3_output(env, &h, out_len)
    })
}

/// blake3Parallel(data): BLAKE3 hashed on rayon's thread pool (one thread per core).
pub unsafe extern "C" fn js_blake3_parallel(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let mut h = blake3::Hasher::new();
        h.update_rayon(data);
        env.uint8array_from(h.finalize().as_bytes())
    })
}

/// blake3HasherNew(key?) -> handle
pub unsafe extern "C" fn js_blake3_hasher_new(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [key] = env.args(info)?;
        let key = blake3_key(env, key)?;
        env.external(new_hasher(key))
    })
}

/// blake3HasherUpdate(handle, data)
pub unsafe extern "C" fn js_blake3_hasher_update(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [handle, data] = env.args(info)?;
        let hasher = unsafe { env.external_ref::<blake3::Hasher>(handle, "hasher")? };
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        hasher.update(data);
        env.undefined()
    })
}

/// blake3HasherDigest(handle, outLength?): the hash so far; the hasher stays usable.
pub unsafe extern "C" fn js_blake3_hasher_digest(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [handle, out_len] = env.args(info)?;
        let hasher = unsafe { env.external_ref::<blake3::Hasher>(handle, "hasher")? };
        let out_len = env.optional_integer(out_len, "outLength", 1.0, MAX_XOF_LEN, 32)?;
        blake3_output(env, hasher, out_len)
    })
}

/// blake2b(data, outLength): unkeyed BLAKE2b with a 1..64 byte digest.
pub unsafe extern "C" fn js_blake2b(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, out_len] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let out_len = env.integer(out_len, "outLength", 1.0, 64.0)?;
        let hash = blake2b_simd::Params::new().hash_length(out_len as usize).hash(data);
        env.uint8array_from(hash.as_bytes())
    })
}

/// Most inputs one blake2bMany call takes: a caller batching blocks has tens of them.
const MAX_MANY: usize = 1 << 16;

/// blake2bMany(inputs: Uint8Array[], outLength): the unkeyed BLAKE2b of each input, concatenated
/// in order (inputs.length * outLength bytes). Hashes up to four inputs at once in the lanes of
/// the widest SIMD unit (blake2b_simd::many): ~2.4x the throughput of one at a time with AVX2.
pub unsafe extern "C" fn js_blake2b_many(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [inputs, out_len] = env.args(info)?;
        let values = env.array(inputs, "inputs", 0, MAX_MANY)?;
        let out_len = env.integer(out_len, "outLength", 1.0, 64.0)? as usize;
        let mut slices = Vec::with_capacity(values.len());
        for (i, &v) in values.iter().enumerate() {
            slices.push(unsafe { env.bytes(v, &format!("inputs[{i}]"))?.as_slice() });
        }
        let mut params = blake2b_simd::Params::new();
        params.hash_length(out_len);
        let mut jobs: Vec<blake2b_simd::many::HashManyJob> = slices.iter().map(|s| blake2b_simd::many::HashManyJob::new(&params, s)).collect();
        blake2b_simd::many::hash_many(jobs.iter_mut());
        let (v, out) = env.new_uint8array(jobs.len() * out_len)?;
        let out = unsafe { out.as_mut_slice() };
        for (i, job) in jobs.iter().enumerate() {
            out[i * out_len..(i + 1) * out_len].copy_from_slice(job.to_hash().as_bytes());
        }
        Ok(v)
    })
}

/// crc32c(data, seed?)
pub unsafe extern "C" fn js_crc32c(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, seed] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let seed = env.optional_integer(seed, "seed", 0.0, u32::MAX as f64, 0)? as u32;
        env.uint32(crc32c(data, seed))
    })
}
