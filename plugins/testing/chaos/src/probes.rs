//! The misbehaviours themselves, using only `std`, so that what they reach
//! is exactly what the host's WASI setup lets a guest reach.

use std::hint::black_box;
use std::sync::Mutex;

/// Never returns. `black_box` keeps the optimizer from proving the loop has
/// no effect and deleting it, so only the host's fuel or epoch limit ends it.
pub fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB at a time and keeps every block until memory runs out.
/// Each page is written so the memory is really committed.
pub fn exhaust_memory() -> ! {
    const BLOCK: usize = 1 << 20;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        for byte in block.iter_mut().step_by(4096) {
            *byte = 1;
        }
        kept.push(black_box(block));
    }
}

/// Every environment variable the guest can see, as `k=v;k=v`.
pub fn environment() -> String {
    std::env::vars()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The file's contents, or the error that stopped reading it.
pub fn read_file(path: &str) -> String {
    match std::fs::read_to_string(path) {
        Ok(contents) => format!("read {path}: {contents}"),
        Err(err) => format!("cannot read {path}: {err}"),
    }
}

/// What happened when opening a TCP connection to a local database port.
pub fn connect() -> String {
    match std::net::TcpStream::connect("127.0.0.1:5432") {
        Ok(stream) => format!("connected: {stream:?}"),
        Err(err) => format!("cannot connect: {err}"),
    }
}

/// What [`remember`] keeps in a static; an instance reused across calls
/// would still hold it.
static REMEMBERED: Mutex<String> = Mutex::new(String::new());

/// Keeps `secret` in a static and, leaked, on the heap, so a later call
/// could find it if it ran in the same instance or memory.
pub fn remember(secret: &str) {
    *REMEMBERED.lock().unwrap_or_else(|e| e.into_inner()) = secret.to_owned();
    black_box(Box::leak(secret.to_owned().into_boxed_str()));
}

/// `static=<what the static holds>;memory=<found|clean>`: the static, and
/// whether the secret appears anywhere in this instance's linear memory.
/// The secret is passed reversed and matched backwards, so that this call's
/// own copy of it is not what the scan finds.
pub fn recall(reversed: &str) -> String {
    let remembered = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let found = if memory_holds_reversed(reversed.as_bytes()) {
        "found"
    } else {
        "clean"
    };
    format!("static={remembered};memory={found}")
}

/// Scans every byte of linear memory 0 for `reversed` read backwards.
#[cfg(target_arch = "wasm32")]
fn memory_holds_reversed(reversed: &[u8]) -> bool {
    let n = reversed.len();
    let size = core::arch::wasm32::memory_size(0) * 65536;
    if n == 0 || size <= n {
        return false;
    }
    // Reading memory that no Rust allocation owns is the point of this
    // probe: on wasm every address below `size` is readable.
    let byte = |addr: usize| unsafe {
        std::ptr::read_volatile(std::ptr::with_exposed_provenance::<u8>(addr))
    };
    (1..size - n).any(|start| (0..n).all(|i| byte(start + i) == reversed[n - 1 - i]))
}

/// Off wasm (the crate's native unit build) there is no linear memory.
#[cfg(not(target_arch = "wasm32"))]
fn memory_holds_reversed(_reversed: &[u8]) -> bool {
    false
}
