//! The misbehaviours themselves, using only `std`, so that what they reach
//! is exactly what the host's WASI setup lets a guest reach.

use std::hint::black_box;

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
