//! The `pier` binary.

use clap::Parser;
use controller::cli::{AccessLog, Cli, Command, LogFormat};
use controller::settings::Settings;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc: the request path allocates and frees many small buffers per request, and
/// jemalloc's thread caches do that in fewer instructions than glibc malloc.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc settings (overridable with `_RJEM_MALLOC_CONF`): a background thread returns freed
/// memory to the system while pier is quiet, e.g. the buffers idle keep-alive connections give
/// back (see `cargo bench -p pier-e2e --bench idle_connections`); without it, memory is only
/// returned as a side effect of later allocations.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,max_background_threads:1\0";

/// Diagnostic logs go to standard error (level from `RUST_LOG`); the access log, when on, to
/// standard output (see `proxy::access`).
fn init_logging(format: LogFormat, access: AccessLog) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    match access {
        AccessLog::Off => {}
        AccessLog::Text => proxy::access::install(proxy::access::Format::Text),
        AccessLog::Json => proxy::access::install(proxy::access::Format::Json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            init_logging(cli.run.log_format, cli.run.access_log);
            controller::run::run(cli.run, |_| Ok(()))
        }
        Some(Command::Run(args)) => {
            init_logging(args.log_format, args.access_log);
            controller::run::run(*args, |_| Ok(()))
        }
        Some(Command::Demo(args)) => {
            // The demo shows every request it serves.
            init_logging(LogFormat::Text, AccessLog::Text);
            controller::demo::demo(args)
        }
        Some(Command::Echo(args)) => {
            init_logging(LogFormat::Text, AccessLog::Off);
            echo(args)
        }
        Some(Command::Check(args)) => {
            let settings = Settings {
                ingress_class: args.ingress_class.clone(),
                ..Settings::default()
            };
            let report = controller::check::check(args.paths, &settings);
            for d in &report.diagnostics {
                println!("{d}");
            }
            if report.diagnostics.is_empty() {
                println!("ok: {} objects, {} routes", report.objects, report.routes);
                return ExitCode::SUCCESS;
            }
            eprintln!("{} problem(s) found", report.diagnostics.len());
            return ExitCode::FAILURE;
        }
    };
    proxy::access::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn echo(args: controller::cli::EchoArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(controller::echo::serve(
        args.listen,
        args.name,
        args.delay_ms,
        args.status,
    ))
}
