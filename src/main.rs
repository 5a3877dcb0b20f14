//! The `legate` binary: Envoy's command line in front of `legate::server::run`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use legate::admin::logging::Loggers;
use legate::cli::{Cli, Mode};

/// The binary's own, unsafe, memory work beside the allocator's (the library forbids unsafe code).
mod code_pages;

/// jemalloc rather than glibc's malloc: glibc kept the memory of closed connections for good
/// (RSS 9.5 -> 62 MiB after 2,000 connections came and went, 76 MiB after another wave), while
/// jemalloc, with the decay set in `.cargo/config.toml`, gives it back within seconds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_from(legate::cli::envoy_argv(std::env::args_os()));
    if cli.version {
        println!("legate version: {}", legate::cli::BUILD_VERSION);
        return ExitCode::SUCCESS;
    }
    if cli.print_support_matrix {
        print!("{}", legate::config::support_matrix());
        return ExitCode::SUCCESS;
    }
    if cli.print_not_supported {
        print!("{}", legate::config::not_supported());
        return ExitCode::SUCCESS;
    }
    let loggers = init_tracing(&cli);

    if cli.config_path.is_none() && cli.config_yaml.is_none() {
        eprintln!("legate: no configuration: give -c/--config-path or --config-yaml");
        return ExitCode::FAILURE;
    }
    let shown = cli.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "--config-yaml".into());
    if let (Mode::Validate, Some(path), None) = (cli.mode, &cli.config_path, &cli.config_yaml) {
        match legate::config::validate_discovery_file(path) {
            Some(Ok(what)) => {
                println!("configuration '{shown}' OK ({what})");
                return ExitCode::SUCCESS;
            }
            Some(Err(errors)) => {
                for e in legate::config::located(&errors) {
                    eprintln!("{e}");
                }
                println!("configuration '{shown}' is invalid ({} error(s))", errors.0.len());
                return ExitCode::FAILURE;
            }
            None => {}
        }
    }
    let loaded = legate::config::load_bootstrap_with_json(cli.config_path.as_deref(), cli.config_yaml.as_deref());
    let (bootstrap, json) = match loaded {
        Ok(b) => b,
        Err(errors) => {
            for e in legate::config::located(&errors) {
                eprintln!("{e}");
            }
            if cli.mode == Mode::Validate {
                println!("configuration '{shown}' is invalid ({} error(s))", errors.0.len());
            }
            return ExitCode::FAILURE;
        }
    };
    if cli.mode == Mode::Validate {
        if let Err(e) = legate::validate_runtime(&bootstrap) {
            eprintln!("{shown}: {e}");
            return ExitCode::FAILURE;
        }
        println!("configuration '{shown}' OK");
        return ExitCode::SUCCESS;
    }
    legate::server::on_started(release_startup_memory);
    // When the last downstream connection closes, what the burst freed goes back at once
    // rather than over the decay time (the thread cache never, on an idle thread).
    legate::idle_release::on_idle(purge_allocator);
    let options = cli.options();
    // One worker: a current-thread runtime. A multi-thread runtime with one worker ran every
    // task on that worker all the same (the main thread only waits in `block_on`), but paid
    // for work stealing, the cross-thread wake-ups and the worker's handoffs: 22.1 against
    // 19.4 us of CPU per proxied request (wrk, 50 connections, proxy pinned to one CPU), 29
    // against 23 with the machine busy.
    // Blocking work (access-log writes, file reads) keeps its own threads in both.
    let mut builder = if options.concurrency == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(options.concurrency);
        b
    };
    let runtime = match builder.enable_all().thread_name("legate-worker").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("legate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result =
        runtime.block_on(legate::server::run_with_loggers(bootstrap, json, options, loggers, std::future::pending()));
    // Dropping a runtime waits for its blocking-pool threads without limit; an access-log
    // write stuck on a full pipe or a hung disk would then keep the process from exiting.
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("legate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Gives back what startup used and the running proxy does not (`server::on_started`): the
/// pages jemalloc holds freed, Envoy's schema (released just before) most of them, at once
/// rather than over the decay time; then the executable's code and read-only data pages, of
/// which startup touched far more than serving runs (`code_pages`).
fn release_startup_memory() {
    purge_allocator();
    let released = code_pages::release();
    tracing::debug!(bytes = released, "startup's read-only pages released");
}

/// Returns this thread's cached free objects to the arena, then every arena's unused dirty
/// pages to the system. The schema was dropped on this thread: its thread cache holds up to a
/// few MiB of the freed objects, which an idle thread never gives back by itself (jemalloc
/// trims a thread cache as the thread allocates).
fn purge_allocator() {
    // 4096 is MALLCTL_ARENAS_ALL: every arena.
    for name in [c"thread.tcache.flush", c"arena.4096.purge"] {
        // SAFETY: both read and write no value; the name is a C string.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
}

/// How long the runtime may take to stop once the server is done.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the stderr subscriber behind a reload layer, so `/logging` can change levels.
fn init_tracing(cli: &Cli) -> Loggers {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload, EnvFilter};

    let loggers = Loggers::new(&cli.log_level);
    let component_error = cli.component_log_level.as_deref().and_then(|spec| loggers.set_components(spec).err());
    let filter = EnvFilter::try_new(loggers.filter()).unwrap_or_else(|_| EnvFilter::new("legate=info"));
    let (filter, handle) = reload::Layer::new(filter);
    let json = cli.log_format.as_deref() == Some("json");
    // One of the two layers is None: `Option<Layer>` is a layer that does nothing when empty.
    let text_layer =
        (!json).then(|| fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr));
    let json_layer = json.then(|| fmt::layer().json().with_writer(std::io::stderr));
    tracing_subscriber::registry().with(filter).with(text_layer).with(json_layer).init();
    if let Some(pattern) = cli.log_format.as_deref().filter(|f| *f != "json") {
        tracing::warn!(
            log_format = pattern,
            "--log-format: only \"json\" is supported; logging in legate's text format"
        );
    }
    if let Some(e) = component_error {
        tracing::warn!(error = %e, "--component-log-level ignored");
    }
    loggers.with_apply(Box::new(move |directives: &str| {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}
