//! Zero-OS native addon (N-API): erasure coding and hashing for the TypeScript userland.
//! The only caller is native/index.ts, which gives every export its typed signature.
mod crc32c;
mod hash;
pub mod rs;
mod rs_napi;
mod napi;
mod snappy;
mod snappy_store;

use napi::{napi_env, napi_value, Env};

/// Called by the host when the addon is loaded: puts every function on `exports`.
///
/// # Safety
/// Only the N-API host calls this, with a live `env` and the module's `exports` object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    napi::guard(env, |env: &Env| {
        let functions: &[(&str, napi::napi_callback)] = &[
            ("blake3", hash::js_blake3),
            ("blake3Parallel", hash::js_blake3_parallel),
            ("blake3HasherNew", hash::js_blake3_hasher_new),
            ("blake3HasherUpdate", hash::js_blake3_hasher_update),
            ("blake3HasherDigest", hash::js_blake3_hasher_digest),
            ("blake2b", hash::js_blake2b),
            ("blake2bMany", hash::js_blake2b_many),
            ("crc32c", hash::js_crc32c),
            ("snappyCompress", snappy::js_snappy_compress),
            ("snappyCompressInto", snappy::js_snappy_compress_into),
            ("snappyMaxCompressedLength", snappy::js_snappy_max_compressed_length),
            ("snappyDecompress", snappy::js_snappy_decompress),
            ("rsEncode", rs_napi::js_rs_encode),
            ("rsReconstruct", rs_napi::js_rs_reconstruct),
            ("rsVerify", rs_napi::js_rs_verify),
            ("rsEncodeInto", rs_napi::js_rs_encode_into),
            ("rsReconstructInto", rs_napi::js_rs_reconstruct_into),
            ("rsEncodeAsync", rs_napi::js_rs_encode_async),
            ("rsReconstructAsync", rs_napi::js_rs_reconstruct_async),
            ("rsPaths", rs_napi::js_rs_paths),
        ];
        for &(name, f) in functions {
            env.define(exports, name, f)?;
        }
        Ok(exports)
    })
}
