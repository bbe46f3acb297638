//! The `paygate` command: read secrets given as files, parse the command
//! line, then run it (see `paygate::cli`).

use clap::Parser;

#[global_allocator]
static ALLOCATOR: paygate::Allocator = paygate::Allocator;

fn main() -> anyhow::Result<()> {
    // SAFETY: the process has one thread yet; the runtime starts below.
    unsafe { paygate::secret_files::load_or_exit(&paygate::secret_files::SECRET_SETTINGS) };
    let cli = paygate::cli::Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(paygate::cli::run(cli))
}
