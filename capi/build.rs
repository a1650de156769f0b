//! The shared library's SONAME: `libmcsafe.so.<ABI major>`. Bump the number
//! (here, in xtask/src/capi.rs and in docs/c.md) with any change that breaks
//! programs linked against an older libmcsafe: a removed function, a changed
//! signature or struct layout.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,libmcsafe.so.0");
}
