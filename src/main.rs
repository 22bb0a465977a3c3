//! The `ironlb` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cli::Output;

#[derive(Parser)]
#[command(
    name = "ironlb",
    version,
    about = "A load balancer for bare-metal Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration (a file or a directory of YAML files) and show the address each
    /// Service in it would get, and why; a Service showing addresses in its status keeps them
    /// if it can. Exits 2 if the configuration is invalid and 1 if a Service gets no address or
    /// cannot keep those its status shows.
    Check {
        /// A YAML file or a directory of them: ironlb.io/v1beta1 kinds, and v1 Services and
        /// Namespaces.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Run a controller member: a Raft member holding the allocations, with the admin API; on
    /// plain hosts, with configuration and Services from --config-file and --services-file.
    Controller(Box<cli::serve::ControllerArgs>),
    /// Run a single-member controller on configuration and Services from files (no
    /// Kubernetes), re-read on SIGHUP and when they change; with --announce, also the speaker,
    /// so one command gives this host its virtual addresses.
    Standalone(cli::standalone::StandaloneArgs),
    /// Run a node's speaker: answer ARP and NDP for the addresses the controller leader
    /// assigns this node, under a lease (fenced the moment it runs out).
    Speaker(cli::speaker::SpeakerArgs),
    /// As root: build a virtual LAN of network namespaces (3 nodes, each a controller member
    /// and a speaker, and a client), allocate the example Services, show the client resolving
    /// each address to its owner, time a failover, and remove everything.
    #[cfg(feature = "demo")]
    Demo(cli::demo::DemoArgs),
    /// Print the CustomResourceDefinitions of ironlb.io (what deploy/base/crds.yaml holds).
    Crds,
    /// Convert MetalLB configuration objects (metallb.io) to ironlb's (ironlb.io) and print
    /// them; other documents are left out with a note on stderr.
    Migrate {
        /// YAML files of MetalLB objects (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The namespace to put them in.
        #[arg(long, default_value = "ironlb-system")]
        namespace: String,
    },
    /// Call a controller's admin API: status, members, pools, services, allocate, explain,
    /// release, reservations, config.
    Ctl(cli::ctl::CtlArgs),
    /// Make a certificate authority and the certificates of members, speakers and admin API
    /// clients (for hosts outside Kubernetes).
    Certs(cli::certs::CertsArgs),
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a long-lived process: one actix System (for the actors) on a multi-thread tokio
/// runtime (for the I/O tasks), as ARCHITECTURE.md lays out.
fn actor_system<F: std::future::Future<Output = Result<ExitCode>>>(main: F) -> Result<ExitCode> {
    let rt = runtime()?;
    actix_rt::System::with_tokio_rt(move || rt).block_on(main)
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, output } => cli::check::check(config, output),
        Command::Ctl(args) => runtime()?.block_on(cli::ctl::run(args)),
        Command::Controller(args) => actor_system(cli::serve::controller(*args)),
        Command::Standalone(args) => {
            ironlb::memory::limit_malloc_arenas(ironlb::memory::SPEAKER_MALLOC_ARENAS);
            actor_system(cli::standalone::run(args))
        }
        Command::Speaker(args) => {
            ironlb::memory::limit_malloc_arenas(ironlb::memory::SPEAKER_MALLOC_ARENAS);
            actor_system(cli::speaker::run(args))
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => runtime()?.block_on(cli::demo::run(args)),
        Command::Crds => {
            print!("{}", ironlb::k8s::crds::yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { files, namespace } => cli::migrate::run(&files, &namespace),
        Command::Certs(args) => cli::certs::run(args).map(|()| ExitCode::SUCCESS),
    }
}
