//! JS bindings for Reed-Solomon: argument checking, zero-copy shard views, fresh Uint8Arrays for
//! computed shards, and async variants that run the arithmetic on the host's worker pool.
use crate::napi::{napi_callback_info, napi_env, napi_value, range_err, spawn_async, AsyncTask, Bytes, Env, JsError, JsResult, Ref};
use crate::rs::{self, kernels, Path, MAX_SHARDS};

fn parse_km(env: &Env, k: napi_value, m: napi_value) -> JsResult<(usize, usize)> {
    let k = env.integer(k, "k", 1.0, (MAX_SHARDS - 1) as f64)? as usize;
    let m = env.integer(m, "m", 0.0, (MAX_SHARDS - 1) as f64)? as usize;
    if k + m > MAX_SHARDS {
        return range_err(format!("k + m must be at most {MAX_SHARDS}, got {k} + {m} = {}", k + m));
    }
    Ok((k, m))
}

/// The CPU path: the fastest one unless a test asks for a specific one.
fn parse_path(env: &Env, v: napi_value) -> JsResult<Path> {
    if env.is_nullish(v)? {
        return Ok(Path::best());
    }
    let name = env.short_string(v, "path", 32)?;
    match Path::from_name(&name) {
        Some(p) if p.supported() => Ok(p),
        Some(_) => range_err(format!("path {name} is not supported by this CPU")),
        None => range_err(format!("unknown path {name:?}; known: gfni-avx512, avx2, ssse3, scalar")),
    }
}

/// Shards of an array argument; None for null/undefined entries when `allow_missing`.
fn shard_views(env: &Env, arr: napi_value, what: &str, count: usize, allow_missing: bool) -> JsResult<(Vec<napi_value>, Vec<Option<Bytes>>)> {
    let values = env.array(arr, what, count, count)?;
    let mut views = Vec::with_capacity(count);
    for (i, &v) in values.iter().enumerate() {
        if allow_missing && env.is_nullish(v)? {
            views.push(None);
        } else {
            views.push(Some(env.bytes(v, &format!("{what}[{i}]"))?));
        }
    }
    Ok((values, views))
}

/// The common length of the present shards.
fn common_length(what: &str, views: &[Option<Bytes>]) -> JsResult<usize> {
    let mut first: Option<(usize, usize)> = None;
    for (i, v) in views.iter().enumerate() {
        let Some(v) = v else { continue };
        match first {
            None => first = Some((i, v.len)),
            Some((f, len)) if v.len != len => {
                return range_err(format!("{what}[{i}] has {} bytes but {what}[{f}] has {len}: all shards must have the same length", v.len));
            }
            Some(_) => {}
        }
    }
    Ok(first.map_or(0, |(_, len)| len))
}

/// One multiply-accumulate over JS memory: outputs = coeffs x inputs.
struct Job {
    path: Path,
    coeffs: Vec<u8>,
    inputs: Vec<Bytes>,
    outputs: Vec<Bytes>,
}

impl Job {
    fn run(&self) {
        // SAFETY: inputs and outputs are views of live Uint8Arrays (held by the caller's stack
        // or by references); outputs are freshly allocated, so they overlap nothing.
        let ins: Vec<&[u8]> = self.inputs.iter().map(|b| unsafe { b.as_slice() }).collect();
        let mut outs: Vec<&mut [u8]> = self.outputs.iter().map(|b| unsafe { b.as_mut_slice() }).collect();
        kernels::combine(self.path, &self.coeffs, &ins, &mut outs);
    }
}

/// A prepared call: the job, the JS values it reads, and the array it resolves to.
struct Prepared {
    job: Job,
    inputs: Vec<napi_value>,
    result: Vec<napi_value>,
}

type Args = [napi_value; 5];

fn prepare_encode(env: &Env, args: Args) -> JsResult<Prepared> {
    let [k, m, data, path, _] = args;
    let (k, m) = parse_km(env, k, m)?;
    let path = parse_path(env, path)?;
    let (values, views) = shard_views(env, data, "data", k, false)?;
    let len = common_length("data", &views)?;
    let mut result = Vec::with_capacity(m);
    let mut outputs = Vec::with_capacity(m);
    for _ in 0..m {
        let (v, b) = env.new_output_buffer(len)?;
        result.push(v);
        outputs.push(b);
    }
    let inputs = views.into_iter().flatten().collect();
    Ok(Prepared { job: Job { path, coeffs: rs::parity_matrix(k, m), inputs, outputs }, inputs: values, result })
}

/// rsEncodeInto(k, m, data, parity, path?): parity shards written into the caller's buffers.
fn prepare_encode_into(env: &Env, args: Args) -> JsResult<Prepared> {
    let [k, m, data, parity, path] = args;
    let (k, m) = parse_km(env, k, m)?;
    let path = parse_path(env, path)?;
    let (values, views) = shard_views(env, data, "data", k, false)?;
    let (parity_values, parity_views) = shard_views(env, parity, "parity", m, false)?;
    let len = common_length("data", &views)?;
    if let Some((i, p)) = parity_views.iter().flatten().enumerate().find(|(_, p)| p.len != len) {
        return range_err(format!("parity[{i}] has {} bytes but the data shards have {len}", p.len));
    }
    let inputs: Vec<Bytes> = views.into_iter().flatten().collect();
    let outputs: Vec<Bytes> = parity_views.into_iter().flatten().collect();
    if let Some(i) = first_overlapping_output(&inputs, &outputs) {
        return range_err(format!("parity[{i}] overlaps another shard"));
    }
    Ok(Prepared { job: Job { path, coeffs: rs::parity_matrix(k, m), inputs, outputs }, inputs: values, result: parity_values })
}

/// An output that shares memory with an input or another output: the kernel would read bytes
/// it already overwrote.
fn first_overlapping_output(inputs: &[Bytes], outputs: &[Bytes]) -> Option<usize> {
    (0..outputs.len()).find(|&n| {
        let o = &outputs[n];
        inputs.iter().any(|i| o.overlaps(i)) || outputs.iter().enumerate().any(|(p, q)| p != n && o.overlaps(q))
    })
}

/// rsReconstructInto(k, m, shards, missing, path?): the shards listed in `missing` (indices) are
/// rebuilt in place from the others.
fn prepare_reconstruct_into(env: &Env, args: Args) -> JsResult<Prepared> {
    let [k, m, shards, missing, path] = args;
    let (k, m) = parse_km(env, k, m)?;
    let path = parse_path(env, path)?;
    let (values, views) = shard_views(env, shards, "shards", k + m, false)?;
    common_length("shards", &views)?;
    let mut present = vec![true; k + m];
    for (n, v) in env.array(missing, "missing", 0, k + m)?.into_iter().enumerate() {
        let i = env.integer(v, &format!("missing[{n}]"), 0.0, (k + m - 1) as f64)? as usize;
        if !present[i] {
            return range_err(format!("missing lists shard {i} twice"));
        }
        present[i] = false;
    }
    let lost = present.iter().filter(|p| !**p).count();
    if lost > m {
        return range_err(format!("too many missing shards: {lost} missing, at most m = {m} can be rebuilt"));
    }
    let plan = rs::rebuild_plan(k, m, &present).ok_or_else(|| JsError::Internal("no rebuild plan with enough shards".into()))?;
    let inputs: Vec<Bytes> = plan.sources.iter().map(|&s| views[s].expect("all shards given")).collect();
    let outputs: Vec<Bytes> = plan.missing.iter().map(|&s| views[s].expect("all shards given")).collect();
    if let Some(n) = first_overlapping_output(&inputs, &outputs) {
        return range_err(format!("shards[{}] (to rebuild) overlaps another shard", plan.missing[n]));
    }
    let source_values = plan.sources.iter().map(|&s| values[s]).collect();
    Ok(Prepared { job: Job { path, coeffs: plan.coeffs, inputs, outputs }, inputs: source_values, result: values })
}

fn prepare_reconstruct(env: &Env, args: Args) -> JsResult<Prepared> {
    let [k, m, shards, path, _] = args;
    let (k, m) = parse_km(env, k, m)?;
    let path = parse_path(env, path)?;
    let (values, views) = shard_views(env, shards, "shards", k + m, true)?;
    let missing = views.iter().filter(|v| v.is_none()).count();
    if missing > m {
        return range_err(format!("too many missing shards: {missing} missing, at most m = {m} can be rebuilt"));
    }
    let len = common_length("shards", &views)?;
    let present: Vec<bool> = views.iter().map(Option::is_some).collect();
    let plan = rs::rebuild_plan(k, m, &present).ok_or_else(|| JsError::Internal("no rebuild plan with enough shards".into()))?;
    let mut result = values.clone();
    let mut outputs = Vec::with_capacity(plan.missing.len());
    for &i in &plan.missing {
        let (v, b) = env.new_output_buffer(len)?;
        result[i] = v;
        outputs.push(b);
    }
    let inputs = plan.sources.iter().map(|&s| views[s].expect("sources are present")).collect();
    let source_values = plan.sources.iter().map(|&s| values[s]).collect();
    Ok(Prepared { job: Job { path, coeffs: plan.coeffs, inputs, outputs }, inputs: source_values, result })
}

fn run_sync(env: &Env, info: napi_callback_info, prepare: fn(&Env, Args) -> JsResult<Prepared>) -> JsResult<napi_value> {
    let p = prepare(env, env.args(info)?)?;
    p.job.run();
    env.new_array(&p.result)
}

struct AsyncJob {
    job: Job,
    /// Keep the inputs and outputs alive (and unmoved by GC) while a worker reads and writes them.
    inputs: Vec<Ref>,
    result: Vec<Ref>,
}

impl AsyncTask for AsyncJob {
    fn execute(&mut self) {
        self.job.run();
    }
    fn complete(self: Box<Self>, env: &Env) -> JsResult<napi_value> {
        let values: JsResult<Vec<napi_value>> = self.result.iter().map(|r| r.value(env)).collect();
        self.inputs.into_iter().chain(self.result).for_each(|r| r.release(env));
        env.new_array(&values?)
    }
}

fn run_async(env: &Env, info: napi_callback_info, name: &str, prepare: fn(&Env, Args) -> JsResult<Prepared>) -> JsResult<napi_value> {
    let p = prepare(env, env.args(info)?)?;
    let mut task = AsyncJob { job: p.job, inputs: Vec::new(), result: Vec::new() };
    let refs = (|| -> JsResult<()> {
        for v in p.inputs {
            task.inputs.push(env.reference(v)?);
        }
        for v in p.result {
            task.result.push(env.reference(v)?);
        }
        Ok(())
    })();
    if let Err(e) = refs {
        task.inputs.into_iter().chain(task.result).for_each(|r| r.release(env));
        return Err(e);
    }
    spawn_async(env, name, Box::new(task))
}

/// rsEncode(k, m, data, path?) -> parity shards
pub unsafe extern "C" fn js_rs_encode(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_sync(env, info, prepare_encode))
}

/// rsReconstruct(k, m, shards, path?) -> all k + m shards
pub unsafe extern "C" fn js_rs_reconstruct(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_sync(env, info, prepare_reconstruct))
}

pub unsafe extern "C" fn js_rs_encode_into(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_sync(env, info, prepare_encode_into))
}

pub unsafe extern "C" fn js_rs_reconstruct_into(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_sync(env, info, prepare_reconstruct_into))
}

pub unsafe extern "C" fn js_rs_encode_async(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_async(env, info, "zos_native.rsEncode", prepare_encode))
}

pub unsafe extern "C" fn js_rs_reconstruct_async(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| run_async(env, info, "zos_native.rsReconstruct", prepare_reconstruct))
}

/// rsVerify(k, m, shards, path?) -> whether the parity matches the data
pub unsafe extern "C" fn js_rs_verify(env: napi_env, info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let [k, m, shards, path] = env.args(info)?;
        let (k, m) = parse_km(env, k, m)?;
        let path = parse_path(env, path)?;
        let (_, views) = shard_views(env, shards, "shards", k + m, false)?;
        common_length("shards", &views)?;
        let slices: Vec<&[u8]> = views.iter().flatten().map(|b| unsafe { b.as_slice() }).collect();
        env.boolean(rs::verify(path, k, m, &slices))
    })
}

/// rsPaths() -> the CPU paths this machine supports, fastest first
pub unsafe extern "C" fn js_rs_paths(env: napi_env, _info: napi_callback_info) -> napi_value {
    crate::napi::guard(env, |env| {
        let names: JsResult<Vec<napi_value>> = Path::ALL.into_iter().filter(|p| p.supported()).map(|p| env.string(p.name())).collect();
        env.new_array(&names?)
    })
}
