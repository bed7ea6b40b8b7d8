// N-API symbols are resolved from the host process (Node or Bun) at load time, so nothing is
// linked for them. `-z nodelete` keeps the library mapped after the host unloads it: rayon's
// worker threads outlive any unload and must not find their code gone.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
