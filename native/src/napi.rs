//! The few N-API functions this addon needs, declared by hand (no napi crate is packaged in
//! Debian), and a thin safe layer over them: argument checking, typed errors, zero-copy byte
//! views of Uint8Arrays, and a panic barrier around every call from JavaScript.
//!
//! The symbols are not linked: the host (Node or Bun) exports them and the dynamic loader binds
//! them when the addon is loaded.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

pub type napi_env = *mut c_void;
pub type napi_value = *mut c_void;
pub type napi_callback_info = *mut c_void;
pub type napi_ref = *mut c_void;
pub type napi_deferred = *mut c_void;
pub type napi_async_work = *mut c_void;
pub type napi_status = i32;
pub type napi_callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;
pub type napi_finalize = unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void);
pub type napi_async_execute_callback = unsafe extern "C" fn(napi_env, *mut c_void);
pub type napi_async_complete_callback = unsafe extern "C" fn(napi_env, napi_status, *mut c_void);

const NAPI_OK: napi_status = 0;
// napi_valuetype
const NAPI_UNDEFINED: i32 = 0;
const NAPI_NULL: i32 = 1;
const NAPI_BOOLEAN: i32 = 2;
const NAPI_NUMBER: i32 = 3;
const NAPI_STRING: i32 = 4;
const NAPI_OBJECT: i32 = 6;
const NAPI_EXTERNAL: i32 = 8;
// napi_typedarray_type
const NAPI_UINT8_ARRAY: i32 = 1;

extern "C" {
    fn napi_create_function(env: napi_env, name: *const c_char, len: usize, cb: napi_callback, data: *mut c_void, result: *mut napi_value) -> napi_status;
    fn napi_set_named_property(env: napi_env, object: napi_value, name: *const c_char, value: napi_value) -> napi_status;
    fn napi_get_cb_info(env: napi_env, info: napi_callback_info, argc: *mut usize, argv: *mut napi_value, this: *mut napi_value, data: *mut *mut c_void) -> napi_status;
    fn napi_typeof(env: napi_env, value: napi_value, result: *mut i32) -> napi_status;
    fn napi_is_typedarray(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_typedarray_info(env: napi_env, value: napi_value, kind: *mut i32, length: *mut usize, data: *mut *mut c_void, arraybuffer: *mut napi_value, byte_offset: *mut usize) -> napi_status;
    fn napi_is_detached_arraybuffer(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_value_string_utf8(env: napi_env, value: napi_value, buf: *mut c_char, size: usize, result: *mut usize) -> napi_status;
    fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_create_uint32(env: napi_env, value: u32, result: *mut napi_value) -> napi_status;
    fn napi_get_boolean(env: napi_env, value: bool, result: *mut napi_value) -> napi_status;
    fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_create_arraybuffer(env: napi_env, length: usize, data: *mut *mut c_void, result: *mut napi_value) -> napi_status;
    fn napi_create_buffer(env: napi_env, length: usize, data: *mut *mut c_void, result: *mut napi_value) -> napi_status;
    fn napi_create_typedarray(env: napi_env, kind: i32, length: usize, arraybuffer: napi_value, byte_offset: usize, result: *mut napi_value) -> napi_status;
    fn napi_create_array_with_length(env: napi_env, length: usize, result: *mut napi_value) -> napi_status;
    fn napi_is_array(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_array_length(env: napi_env, value: napi_value, result: *mut u32) -> napi_status;
    fn napi_get_element(env: napi_env, object: napi_value, index: u32, result: *mut napi_value) -> napi_status;
    fn napi_set_element(env: napi_env, object: napi_value, index: u32, value: napi_value) -> napi_status;
    fn napi_create_string_utf8(env: napi_env, s: *const c_char, len: usize, result: *mut napi_value) -> napi_status;
    fn napi_create_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    fn napi_create_type_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    fn napi_create_range_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    fn napi_throw(env: napi_env, error: napi_value) -> napi_status;
    fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    fn napi_create_external(env: napi_env, data: *mut c_void, finalize: napi_finalize, hint: *mut c_void, result: *mut napi_value) -> napi_status;
    fn napi_get_value_external(env: napi_env, value: napi_value, result: *mut *mut c_void) -> napi_status;
    fn napi_create_reference(env: napi_env, value: napi_value, initial: u32, result: *mut napi_ref) -> napi_status;
    fn napi_delete_reference(env: napi_env, r: napi_ref) -> napi_status;
    fn napi_get_reference_value(env: napi_env, r: napi_ref, result: *mut napi_value) -> napi_status;
    fn napi_create_promise(env: napi_env, deferred: *mut napi_deferred, promise: *mut napi_value) -> napi_status;
    fn napi_resolve_deferred(env: napi_env, deferred: napi_deferred, value: napi_value) -> napi_status;
    fn napi_reject_deferred(env: napi_env, deferred: napi_deferred, value: napi_value) -> napi_status;
    fn napi_create_async_work(env: napi_env, resource: napi_value, name: napi_value, execute: napi_async_execute_callback, complete: napi_async_complete_callback, data: *mut c_void, result: *mut napi_async_work) -> napi_status;
    fn napi_queue_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    fn napi_delete_async_work(env: napi_env, work: napi_async_work) -> napi_status;
}

/// An error to hand back to JavaScript. The kind picks the JS class; the code becomes `err.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsError {
    /// TypeError, ERR_INVALID_ARG_TYPE: an argument of the wrong kind.
    Type(String),
    /// RangeError, ERR_OUT_OF_RANGE: an argument of the right kind with an unusable value.
    Range(String),
    /// RangeError with a specific code (e.g. corrupt compressed data).
    RangeCode(&'static str, String),
    /// Error, ERR_NATIVE: the host refused an N-API call or the addon panicked.
    Internal(String),
    /// A JavaScript exception is already pending; leave it as it is.
    Pending,
}

pub type JsResult<T> = Result<T, JsError>;

pub fn type_err<T>(msg: impl Into<String>) -> JsResult<T> {
    Err(JsError::Type(msg.into()))
}

pub fn range_err<T>(msg: impl Into<String>) -> JsResult<T> {
    Err(JsError::Range(msg.into()))
}

/// A napi_env for the duration of one call from JavaScript (or one async completion).
#[derive(Clone, Copy)]
pub struct Env(pub napi_env);

fn check(env: napi_env, status: napi_status, what: &str) -> JsResult<()> {
    if status == NAPI_OK {
        return Ok(());
    }
    let mut pending = false;
    unsafe { napi_is_exception_pending(env, &mut pending) };
    if pending {
        Err(JsError::Pending)
    } else {
        Err(JsError::Internal(format!("{what} failed with napi_status {status}")))
    }
}

/// A plain Uint8Array view of JavaScript memory. Valid while the JS value is reachable (for the
/// duration of a synchronous call, or while a reference holds it).
#[derive(Clone, Copy)]
pub struct Bytes {
    pub ptr: *mut u8,
    pub len: usize,
}

unsafe impl Send for Bytes {}

impl Bytes {
    /// # Safety
    /// The backing JS value must be alive and not resized/detached while the slice is used.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.len == 0 { &[] } else { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// Whether both are non-empty and share memory (an empty view reads and writes nothing).
    pub fn overlaps(&self, other: &Bytes) -> bool {
        let (a, b) = (self.ptr as usize, other.ptr as usize);
        self.len > 0 && other.len > 0 && a < b + other.len && b < a + self.len
    }
    /// # Safety
    /// As `as_slice`, and no other live slice may overlap it.
    pub unsafe fn as_mut_slice<'a>(&self) -> &'a mut [u8] {
        if self.len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Env {
    pub fn args<const N: usize>(&self, info: napi_callback_info) -> JsResult<[napi_value; N]> {
        let mut argv = [null_mut(); N];
        let mut argc = N;
        check(self.0, unsafe { napi_get_cb_info(self.0, info, &mut argc, argv.as_mut_ptr(), null_mut(), null_mut()) }, "napi_get_cb_info")?;
        Ok(argv)
    }

    fn type_of(&self, v: napi_value) -> JsResult<i32> {
        let mut t = 0;
        check(self.0, unsafe { napi_typeof(self.0, v, &mut t) }, "napi_typeof")?;
        Ok(t)
    }

    /// A short description of a value's type for error messages.
    pub fn describe(&self, v: napi_value) -> &'static str {
        match self.type_of(v) {
            Ok(0) => "undefined",
            Ok(1) => "null",
            Ok(2) => "boolean",
            Ok(3) => "number",
            Ok(4) => "string",
            Ok(5) => "symbol",
            Ok(6) => {
                if self.is_array(v).unwrap_or(false) { "Array" } else if self.is_typedarray(v).unwrap_or(false) { "a typed array other than Uint8Array" } else { "object" }
            }
            Ok(7) => "function",
            Ok(8) => "external",
            Ok(9) => "bigint",
            _ => "unknown",
        }
    }

    pub fn is_nullish(&self, v: napi_value) -> JsResult<bool> {
        let t = self.type_of(v)?;
        Ok(t == NAPI_UNDEFINED || t == NAPI_NULL)
    }

    fn is_typedarray(&self, v: napi_value) -> JsResult<bool> {
        let mut r = false;
        check(self.0, unsafe { napi_is_typedarray(self.0, v, &mut r) }, "napi_is_typedarray")?;
        Ok(r)
    }

    pub fn is_array(&self, v: napi_value) -> JsResult<bool> {
        let mut r = false;
        check(self.0, unsafe { napi_is_array(self.0, v, &mut r) }, "napi_is_array")?;
        Ok(r)
    }

    /// A zero-copy view of a Uint8Array (Buffer is one). `what` names the argument in errors.
    pub fn bytes(&self, v: napi_value, what: &str) -> JsResult<Bytes> {
        if self.type_of(v)? != NAPI_OBJECT || !self.is_typedarray(v)? {
            return type_err(format!("{what} must be a Uint8Array or Buffer, got {}", self.describe(v)));
        }
        let (mut kind, mut len, mut data, mut ab, mut off) = (0i32, 0usize, null_mut(), null_mut(), 0usize);
        check(self.0, unsafe { napi_get_typedarray_info(self.0, v, &mut kind, &mut len, &mut data, &mut ab, &mut off) }, "napi_get_typedarray_info")?;
        if kind != NAPI_UINT8_ARRAY {
            return type_err(format!("{what} must be a Uint8Array or Buffer, got a typed array other than Uint8Array"));
        }
        let mut detached = false;
        check(self.0, unsafe { napi_is_detached_arraybuffer(self.0, ab, &mut detached) }, "napi_is_detached_arraybuffer")?;
        if detached {
            return type_err(format!("{what} is a view of a detached ArrayBuffer"));
        }
        if data.is_null() && len != 0 {
            return type_err(format!("{what} has no backing memory"));
        }
        Ok(Bytes { ptr: data as *mut u8, len })
    }

    /// A finite number that is an integer in [min, max].
    pub fn integer(&self, v: napi_value, what: &str, min: f64, max: f64) -> JsResult<u64> {
        if self.type_of(v)? != NAPI_NUMBER {
            return type_err(format!("{what} must be a number, got {}", self.describe(v)));
        }
        let mut d = 0f64;
        check(self.0, unsafe { napi_get_value_double(self.0, v, &mut d) }, "napi_get_value_double")?;
        if !d.is_finite() || d.fract() != 0.0 || d < min || d > max {
            return range_err(format!("{what} must be an integer from {min} to {max}, got {d}"));
        }
        Ok(d as u64)
    }

    /// A string of at most `max` bytes of UTF-8.
    pub fn short_string(&self, v: napi_value, what: &str, max: usize) -> JsResult<String> {
        if self.type_of(v)? != NAPI_STRING {
            return type_err(format!("{what} must be a string, got {}", self.describe(v)));
        }
        let mut len = 0usize;
        check(self.0, unsafe { napi_get_value_string_utf8(self.0, v, null_mut(), 0, &mut len) }, "napi_get_value_string_utf8")?;
        if len > max {
            return range_err(format!("{what} is too long ({len} bytes)"));
        }
        let mut buf = vec![0u8; len + 1];
        check(self.0, unsafe { napi_get_value_string_utf8(self.0, v, buf.as_mut_ptr() as *mut c_char, len + 1, &mut len) }, "napi_get_value_string_utf8")?;
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// `integer`, or `default` when the argument is undefined or null.
    pub fn optional_integer(&self, v: napi_value, what: &str, min: f64, max: f64, default: u64) -> JsResult<u64> {
        if self.is_nullish(v)? { Ok(default) } else { self.integer(v, what, min, max) }
    }

    /// A boolean argument, or `default` when it is undefined or null.
    pub fn optional_bool(&self, v: napi_value, what: &str, default: bool) -> JsResult<bool> {
        if self.is_nullish(v)? {
            return Ok(default);
        }
        if self.type_of(v)? != NAPI_BOOLEAN {
            return type_err(format!("{what} must be a boolean, got {}", self.describe(v)));
        }
        let mut r = false;
        check(self.0, unsafe { napi_get_value_bool(self.0, v, &mut r) }, "napi_get_value_bool")?;
        Ok(r)
    }

    /// The elements of a JS Array of `min..=max` entries; `what` names it in errors. The length is
    /// checked before any element is read, so a huge sparse array costs nothing.
    pub fn array(&self, v: napi_value, what: &str, min: usize, max: usize) -> JsResult<Vec<napi_value>> {
        if self.type_of(v)? != NAPI_OBJECT || !self.is_array(v)? {
            return type_err(format!("{what} must be an Array, got {}", self.describe(v)));
        }
        let mut len = 0u32;
        check(self.0, unsafe { napi_get_array_length(self.0, v, &mut len) }, "napi_get_array_length")?;
        if (len as usize) < min || len as usize > max {
            let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return range_err(format!("{what} has {len} entries, expected {expected}"));
        }
        (0..len)
            .map(|i| {
                let mut e = null_mut();
                check(self.0, unsafe { napi_get_element(self.0, v, i, &mut e) }, "napi_get_element")?;
                Ok(e)
            })
            .collect()
    }

    /// A fresh Uint8Array of `len` bytes (its own ArrayBuffer) and a pointer to its memory.
    pub fn new_uint8array(&self, len: usize) -> JsResult<(napi_value, Bytes)> {
        let (mut data, mut ab, mut ta) = (null_mut(), null_mut(), null_mut());
        check(self.0, unsafe { napi_create_arraybuffer(self.0, len, &mut data, &mut ab) }, "napi_create_arraybuffer")?;
        check(self.0, unsafe { napi_create_typedarray(self.0, NAPI_UINT8_ARRAY, len, ab, 0, &mut ta) }, "napi_create_typedarray")?;
        Ok((ta, Bytes { ptr: data as *mut u8, len }))
    }

    /// A fresh Buffer (a Uint8Array) of `len` bytes whose contents are unspecified: for outputs
    /// that are overwritten in full before JavaScript sees them. Skips the zero fill.
    pub fn new_output_buffer(&self, len: usize) -> JsResult<(napi_value, Bytes)> {
        let (mut data, mut v) = (null_mut(), null_mut());
        check(self.0, unsafe { napi_create_buffer(self.0, len, &mut data, &mut v) }, "napi_create_buffer")?;
        Ok((v, Bytes { ptr: data as *mut u8, len }))
    }

    pub fn uint8array_from(&self, bytes: &[u8]) -> JsResult<napi_value> {
        let (v, out) = self.new_uint8array(bytes.len())?;
        unsafe { out.as_mut_slice() }.copy_from_slice(bytes);
        Ok(v)
    }

    pub fn new_array(&self, items: &[napi_value]) -> JsResult<napi_value> {
        let mut arr = null_mut();
        check(self.0, unsafe { napi_create_array_with_length(self.0, items.len(), &mut arr) }, "napi_create_array_with_length")?;
        for (i, &v) in items.iter().enumerate() {
            check(self.0, unsafe { napi_set_element(self.0, arr, i as u32, v) }, "napi_set_element")?;
        }
        Ok(arr)
    }

    pub fn uint32(&self, n: u32) -> JsResult<napi_value> {
        let mut v = null_mut();
        check(self.0, unsafe { napi_create_uint32(self.0, n, &mut v) }, "napi_create_uint32")?;
        Ok(v)
    }

    pub fn boolean(&self, b: bool) -> JsResult<napi_value> {
        let mut v = null_mut();
        check(self.0, unsafe { napi_get_boolean(self.0, b, &mut v) }, "napi_get_boolean")?;
        Ok(v)
    }

    pub fn undefined(&self) -> JsResult<napi_value> {
        let mut v = null_mut();
        check(self.0, unsafe { napi_get_undefined(self.0, &mut v) }, "napi_get_undefined")?;
        Ok(v)
    }

    pub fn string(&self, s: &str) -> JsResult<napi_value> {
        let mut v = null_mut();
        check(self.0, unsafe { napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v) }, "napi_create_string_utf8")?;
        Ok(v)
    }

    /// Moves `value` into a JS external that drops it when collected.
    pub fn external<T: 'static>(&self, value: T) -> JsResult<napi_value> {
        unsafe extern "C" fn finalize<T>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
            drop(Box::from_raw(data as *mut T));
        }
        let raw = Box::into_raw(Box::new(value));
        let mut v = null_mut();
        let status = unsafe { napi_create_external(self.0, raw as *mut c_void, finalize::<T>, null_mut(), &mut v) };
        if status != NAPI_OK {
            drop(unsafe { Box::from_raw(raw) });
        }
        check(self.0, status, "napi_create_external")?;
        Ok(v)
    }

    /// The value inside an external made by `external::<T>`.
    ///
    /// # Safety
    /// The external must have been made by `external::<T>` with the same T; externals are only
    /// handed to the typed wrapper in native/index.ts, which keeps them private.
    pub unsafe fn external_ref<'a, T>(&self, v: napi_value, what: &str) -> JsResult<&'a mut T> {
        if self.type_of(v)? != NAPI_EXTERNAL {
            return type_err(format!("{what} must be a native handle, got {}", self.describe(v)));
        }
        let mut p = null_mut();
        check(self.0, napi_get_value_external(self.0, v, &mut p), "napi_get_value_external")?;
        Ok(&mut *(p as *mut T))
    }

    pub fn reference(&self, v: napi_value) -> JsResult<Ref> {
        let mut r = null_mut();
        check(self.0, unsafe { napi_create_reference(self.0, v, 1, &mut r) }, "napi_create_reference")?;
        Ok(Ref(r))
    }

    /// The JS error object for `err` (None when an exception is already pending).
    fn error_value(&self, err: &JsError) -> Option<napi_value> {
        let (code, msg, make): (&str, &str, unsafe extern "C" fn(napi_env, napi_value, napi_value, *mut napi_value) -> napi_status) = match err {
            JsError::Type(m) => ("ERR_INVALID_ARG_TYPE", m, napi_create_type_error),
            JsError::Range(m) => ("ERR_OUT_OF_RANGE", m, napi_create_range_error),
            JsError::RangeCode(c, m) => (c, m, napi_create_range_error),
            JsError::Internal(m) => ("ERR_NATIVE", m, napi_create_error),
            JsError::Pending => return None,
        };
        let code = self.string(code).ok()?;
        let msg = self.string(msg).ok()?;
        let mut e = null_mut();
        (unsafe { make(self.0, code, msg, &mut e) } == NAPI_OK).then_some(e)
    }

    pub fn throw(&self, err: &JsError) {
        if let Some(e) = self.error_value(err) {
            unsafe { napi_throw(self.0, e) };
        }
    }

    pub fn define(&self, exports: napi_value, name: &str, cb: napi_callback) -> JsResult<()> {
        let cname = CString::new(name).expect("export names have no NUL");
        let mut f = null_mut();
        check(self.0, unsafe { napi_create_function(self.0, cname.as_ptr(), name.len(), cb, null_mut(), &mut f) }, "napi_create_function")?;
        check(self.0, unsafe { napi_set_named_property(self.0, exports, cname.as_ptr(), f) }, "napi_set_named_property")
    }
}

/// A strong reference that keeps a JS value alive across an async operation.
pub struct Ref(napi_ref);

unsafe impl Send for Ref {}

impl Ref {
    pub fn value(&self, env: &Env) -> JsResult<napi_value> {
        let mut v = null_mut();
        check(env.0, unsafe { napi_get_reference_value(env.0, self.0, &mut v) }, "napi_get_reference_value")?;
        Ok(v)
    }
    pub fn release(self, env: &Env) {
        unsafe { napi_delete_reference(env.0, self.0) };
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f` on behalf of a JS call: a Rust error becomes a thrown JS error, and a panic becomes
/// an `Error` with code ERR_NATIVE instead of unwinding into the host.
pub fn guard(env: napi_env, f: impl FnOnce(&Env) -> JsResult<napi_value>) -> napi_value {
    let e = Env(env);
    match catch_unwind(AssertUnwindSafe(|| f(&e))) {
        Ok(Ok(v)) => v,
        Ok(Err(err)) => {
            e.throw(&err);
            null_mut()
        }
        Err(payload) => {
            e.throw(&JsError::Internal(format!("zos_native panicked: {}", panic_message(&*payload))));
            null_mut()
        }
    }
}

/// Work done off the JS thread with napi async work, settling a promise on the JS thread.
pub trait AsyncTask: Send + 'static {
    /// Runs on a worker thread; must not touch JS values.
    fn execute(&mut self);
    /// Runs on the JS thread afterwards: builds the resolution value and releases references.
    fn complete(self: Box<Self>, env: &Env) -> JsResult<napi_value>;
}

struct AsyncState {
    task: Option<Box<dyn AsyncTask>>,
    panicked: Option<String>,
    deferred: napi_deferred,
    work: napi_async_work,
}

unsafe extern "C" fn async_execute(_env: napi_env, data: *mut c_void) {
    let state = &mut *(data as *mut AsyncState);
    if let Some(task) = state.task.as_mut() {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| task.execute())) {
            state.panicked = Some(panic_message(&*p));
        }
    }
}

unsafe extern "C" fn async_complete(env: napi_env, status: napi_status, data: *mut c_void) {
    let state = Box::from_raw(data as *mut AsyncState);
    let e = Env(env);
    let task = state.task.expect("async task present until completion");
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let result = task.complete(&e);
        if let Some(msg) = &state.panicked {
            return Err(JsError::Internal(format!("zos_native panicked on a worker thread: {msg}")));
        }
        if status != NAPI_OK {
            return Err(JsError::Internal(format!("async work ended with napi_status {status}")));
        }
        result
    }))
    .unwrap_or_else(|p| Err(JsError::Internal(format!("zos_native panicked: {}", panic_message(&*p)))));
    match outcome {
        Ok(v) => {
            napi_resolve_deferred(env, state.deferred, v);
        }
        Err(err) => {
            let reason = e.error_value(&err).or_else(|| e.string("zos_native async operation failed").ok()).unwrap_or(null_mut());
            napi_reject_deferred(env, state.deferred, reason);
        }
    }
    napi_delete_async_work(env, state.work);
}

/// Queues `task` on the host's worker pool and returns a promise for its result.
pub fn spawn_async(env: &Env, name: &str, task: Box<dyn AsyncTask>) -> JsResult<napi_value> {
    let (mut deferred, mut promise) = (null_mut(), null_mut());
    check(env.0, unsafe { napi_create_promise(env.0, &mut deferred, &mut promise) }, "napi_create_promise")?;
    let state = Box::into_raw(Box::new(AsyncState { task: Some(task), panicked: None, deferred, work: null_mut() }));
    let resource_name = env.string(name)?;
    let mut work = null_mut();
    let status = unsafe { napi_create_async_work(env.0, null_mut(), resource_name, async_execute, async_complete, state as *mut c_void, &mut work) };
    if status == NAPI_OK {
        unsafe { (*state).work = work };
        let queued = unsafe { napi_queue_async_work(env.0, work) };
        if queued == NAPI_OK {
            return Ok(promise);
        }
        unsafe { napi_delete_async_work(env.0, work) };
    }
    // Not queued: give the references back and report the failure through the promise's caller.
    let state = unsafe { Box::from_raw(state) };
    if let Some(task) = state.task {
        let _ = task.complete(env);
    }
    Err(JsError::Internal(format!("could not queue async work {name}")))
}
