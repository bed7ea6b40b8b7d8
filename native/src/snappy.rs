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

/// snappyCompress(data)
pub unsafe extern "C" fn js_snappy_compress(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [data] = env.args(info)?;
        let data = unsafe { env.bytes(data, "data")?.as_slice() };
        let max = snap::raw::max_compress_len(data.len());
        if max == 0 {
            return range_err(format!("data of {} bytes is too large for snappy", data.len()));
        }
        let compress_into = |buf: &mut [u8]| {
            let n = snap::raw::Encoder::new()
                .compress(data, buf)
                .map_err(|e| JsError::Range(format!("snappy compression failed: {e}")))?;
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
