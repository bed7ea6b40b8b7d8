//! JS bindings for raw (unframed) snappy, the block compression of the rfs flist format.
use std::cell::RefCell;

use crate::napi::{napi_callback_info, napi_env, napi_value, range_err, JsError};

/// Default ceiling on a decompressed size: the raw format's header may claim up to 4 GiB, and a
/// few corrupt bytes must not make us allocate that.
const DEFAULT_MAX_DECOMPRESSED: u64 = 256 << 20;

thread_local! {
    /// Where each compression lands before its exact-size copy goes to JavaScript. Kept per thread
    /// (a vdisk encoder compresses a block after another): a fresh zeroed buffer of the worst-case
    /// size per call cost a memset of more than the input, and fresh pages, each time.
    static COMPRESS_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Inputs above this size (rare: blocks are 64 KiB to 1 MiB) get a buffer of their own, so one
/// big compression does not leave a thread holding its worst case forever.
const SCRATCH_MAX_INPUT: usize = 4 << 20;

/// Inputs of the functions that return a length stop here, so the bound fits the u32 they return.
const MAX_COUNTED_INPUT: usize = 1 << 31;

/// snappy's bound on the compressed size of `len` bytes; errors when snappy cannot take them.
fn max_compressed_len(len: usize) -> Result<usize, JsError> {
    match snap::raw::max_compress_len(len) {
        0 => Err(JsError::Range(format!("data of {len} bytes is too large for snappy"))),
        max => Ok(max),
    }
}

/// As max_compressed_len, for the functions that return a u32.
fn counted_max_compressed_len(len: usize) -> Result<usize, JsError> {
    if len > MAX_COUNTED_INPUT {
        return Err(JsError::Range(format!("data of {len} bytes is more than the {MAX_COUNTED_INPUT} this function takes")));
    }
    max_compressed_len(len)
}

/// Compresses into `out`; with `store_incompressible`, data that does not compress is written as
/// literals instead (snappy_store.rs).
fn compress(data: &[u8], out: &mut [u8], store_incompressible: bool) -> Result<usize, JsError> {
    let n = if store_incompressible { crate::snappy_store::compress_or_store(data, out) } else { snap::raw::Encoder::new().compress(data, out) };
    n.map_err(|e| JsError::Range(format!("snappy compression failed: {e}")))
}

/// snappyCompress(data, storeIncompressible?)
pub unsafe extern "C" fn js_snappy_compress(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, store] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let store = env.optional_bool(store, "storeIncompressible", false)?;
        let max = max_compressed_len(data.len())?;
        let compress_into = |buf: &mut [u8]| {
            let n = compress(data, buf, store)?;
            let (v, out) = env.new_output_buffer(n)?;
            unsafe { out.as_mut_slice() }.copy_from_slice(&buf[..n]);
            Ok(v)
        };
        if data.len() > SCRATCH_MAX_INPUT {
            return compress_into(&mut vec![0u8; max]);
        }
        COMPRESS_SCRATCH.with_borrow_mut(|buf| {
            if buf.len() < max {
                buf.resize(max, 0);
            }
            compress_into(&mut buf[..max])
        })
    })
}

/// snappyCompressInto(data, out, storeIncompressible?): compresses straight into `out` (a caller's
/// reused buffer, so no allocation and no copy), which must hold
/// snappyMaxCompressedLength(data.length) bytes and must not overlap `data`; returns the
/// compressed length.
pub unsafe extern "C" fn js_snappy_compress_into(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, out, store] = env.args(info)?;
        let store = env.optional_bool(store, "storeIncompressible", false)?;
        let data = env.bytes(data, "data")?;
        let out = env.bytes(out, "out")?;
        let max = counted_max_compressed_len(data.len)?;
        if out.len < max {
            return range_err(format!("out holds {} bytes; compressing {} bytes needs {max}", out.len, data.len));
        }
        if out.overlaps(&data) {
            return range_err("out overlaps data");
        }
        let n = compress(unsafe { data.as_slice() }, unsafe { out.as_mut_slice() }, store)?;
        env.uint32(n as u32)
    })
}

/// snappyMaxCompressedLength(length)
pub unsafe extern "C" fn js_snappy_max_compressed_length(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [len] = env.args(info)?;
        let len = env.integer(len, "length", 0.0, MAX_COUNTED_INPUT as f64)?;
        env.uint32(counted_max_compressed_len(len as usize)? as u32)
    })
}

/// snappyDecompress(data, maxLength?)
pub unsafe extern "C" fn js_snappy_decompress(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data, max_len] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let max_len = env.optional_integer(max_len, "maxLength", 0.0, u32::MAX as f64, DEFAULT_MAX_DECOMPRESSED)?;
        let corrupt = |e: snap::Error| JsError::RangeCode("ERR_SNAPPY_CORRUPT", format!("corrupt snappy data: {e}"));
        let len = snap::raw::decompress_len(data).map_err(corrupt)?;
        if len as u64 > max_len {
            return range_err(format!("snappy data decompresses to {len} bytes, more than maxLength {max_len}"));
        }
        let (v, out) = env.new_uint8array(len)?;
        let n = snap::raw::Decoder::new().decompress(data, unsafe { out.as_mut_slice() }).map_err(corrupt)?;
        if n != len {
            return Err(corrupt(snap::Error::HeaderMismatch { expected_len: len as u64, got_len: n as u64 }));
        }
        Ok(v)
    })
}
