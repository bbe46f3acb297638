//! Every log line the host writes in this test process, captured in memory
//! by the production subscriber (`paygate::telemetry::subscriber`, JSON,
//! `debug` and up), so a test can prove no key, secret or signature ever
//! reaches a log, and that lines carry their spans.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn buffer() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        // The production subscriber, only its sink and filter changed.
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,h2=info,hyper=info,lapin=info,amq_protocol=info,cranelift=warn,wasmtime=warn,sqlx=warn,reqwest=info,rustls=info",
        );
        let subscriber = paygate::telemetry::subscriber(filter, paygate::telemetry::Format::Json, move || writer.clone());
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

/// Starts capturing (idempotent): call before the first app starts.
pub fn capture() {
    buffer();
}

/// Everything logged so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&buffer().0.lock().unwrap()).into_owned()
}
