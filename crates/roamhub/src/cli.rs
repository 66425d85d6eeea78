//! The command line of `roamhub`, grouped by noun.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use roamhub_node::tls::Tls;
use roamhub_node::{TlsFiles, Transport};

#[derive(Debug, Parser)]
#[command(
    name = "roamhub",
    version,
    about = "A federated roaming hub for citizens' data pointers and consents"
)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(flatten)]
    pub tls: TlsOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// How client subcommands reach a node and print answers.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// Any node's public API, host:port.
    #[arg(long, global = true, env = "ROAMHUB_NODE", default_value = "127.0.0.1:7101")]
    pub node: String,
    /// Print answers as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Folder of citizens' signing keys; default $ROAMHUB_HOME/keys, else ~/.roamhub/keys.
    #[arg(long, global = true, env = "ROAMHUB_KEYSTORE")]
    pub keystore: Option<PathBuf>,
}

/// The certificates a node or client proves itself with. Nodes and clients alike refuse
/// to run without them unless `--insecure` says so.
#[derive(Debug, Clone, Args)]
pub struct TlsOptions {
    /// PEM certificate of the federation's certificate authority.
    #[arg(long, global = true, env = "ROAMHUB_CA")]
    pub ca: Option<PathBuf>,
    /// PEM certificate of this node, operator or service.
    #[arg(long, global = true, env = "ROAMHUB_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, global = true, env = "ROAMHUB_KEY")]
    pub key: Option<PathBuf>,
    /// PEM revocation list of the certificate authority, reloaded when it changes.
    #[arg(long, global = true, env = "ROAMHUB_CRL")]
    pub crl: Option<PathBuf>,
    /// Plaintext, no certificates, nobody authenticated: for local experiments only.
    #[arg(
        long,
        global = true,
        env = "ROAMHUB_INSECURE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure: bool,
}

impl TlsOptions {
    /// The certificate files, or `None` under `--insecure`; an error when neither is given.
    pub fn files(&self) -> anyhow::Result<Option<TlsFiles>> {
        if self.insecure {
            return Ok(None);
        }
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
                crl: self.crl.clone(),
            })),
            _ => anyhow::bail!(
                "--ca, --cert and --key (or ROAMHUB_CA, ROAMHUB_CERT and ROAMHUB_KEY) are \
                 required; --insecure runs plaintext, for local experiments only"
            ),
        }
    }

    /// How a client reaches nodes: with its certificate, or plaintext under `--insecure`,
    /// which it says on standard error.
    pub fn client_transport(&self) -> anyhow::Result<Transport> {
        match self.files()? {
            Some(files) => Ok(Transport::Tls(Tls::load(files)?)),
            None => {
                eprintln!("warning: --insecure: plaintext, and the node cannot tell who you are");
                Ok(Transport::Insecure)
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Serve(ServeArgs),
    /// A development certificate authority: create it, issue and revoke certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Start a local federation of three cities and tell a citizen's story through it.
    Demo(DemoArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// Flags of `roamhub serve`. Each can also come from a `ROAMHUB_*` variable or the TOML file
/// named by `--config`; a flag beats a variable, which beats the file.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (same names, underscores).
    #[arg(long, env = "ROAMHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Raft node id, a positive number unique in the federation.
    #[arg(long, env = "ROAMHUB_NODE_ID")]
    pub node_id: Option<u64>,
    /// The city this node serves, e.g. nl-eindhoven.
    #[arg(long, env = "ROAMHUB_CITY_ID")]
    pub city_id: Option<String>,
    /// The city's name as people know it.
    #[arg(long, env = "ROAMHUB_DISPLAY_NAME")]
    pub display_name: Option<String>,
    #[arg(long, env = "ROAMHUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// host:port of the internal Raft listener.
    #[arg(long, env = "ROAMHUB_RAFT_ADDR")]
    pub raft_addr: Option<String>,
    /// host:port of the public API listener.
    #[arg(long, env = "ROAMHUB_API_ADDR")]
    pub api_addr: Option<String>,
    /// On exactly one node of a new federation: an initial voter, ID@RAFT_ADDR@API_ADDR.
    /// Repeat for each voter, this node included. Ignored once the federation exists.
    #[arg(long = "bootstrap-member", env = "ROAMHUB_BOOTSTRAP_MEMBERS", value_delimiter = ',')]
    pub bootstrap_members: Vec<String>,
    #[arg(long, env = "ROAMHUB_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    #[arg(long, env = "ROAMHUB_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    #[arg(long, env = "ROAMHUB_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// The federation's identifier key, 64 hex digits, the same on every node. Identifiers
    /// are kept only as keyed hashes under it. Prefer the variable or file to the flag,
    /// which other users of the machine can see.
    #[arg(long, env = "ROAMHUB_IDENTIFIER_KEY", hide_env_values = true)]
    pub identifier_key: Option<String>,
    /// Build a snapshot after this many applied entries.
    #[arg(long, env = "ROAMHUB_SNAPSHOT_EVERY_ENTRIES")]
    pub snapshot_every_entries: Option<u64>,
    /// Entries kept in the log behind a snapshot.
    #[arg(long, env = "ROAMHUB_ENTRIES_KEPT_AFTER_SNAPSHOT")]
    pub entries_kept_after_snapshot: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a certificate authority in a folder: ca.pem, ca.key, crl.pem.
    Ca {
        /// The authority's folder.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "roamhub development CA")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a certificate for a city's node, valid for the hosts it is dialled at.
    Node {
        #[command(flatten)]
        issue: IssueArgs,
        #[arg(long)]
        city: String,
        #[arg(long)]
        node_id: u64,
        /// A DNS name or IP address the node is reached at; repeatable. Default: localhost
        /// and 127.0.0.1.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Issue a certificate for a city's operator.
    Operator {
        #[command(flatten)]
        issue: IssueArgs,
        #[arg(long)]
        city: String,
    },
    /// Issue a certificate for a service.
    Service {
        #[command(flatten)]
        issue: IssueArgs,
        #[arg(long)]
        service: String,
    },
    /// Revoke a certificate: it joins the authority's revocation list, which nodes reload.
    Revoke {
        /// The authority's folder.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
}

/// Where the authority is and where the new certificate goes.
#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
    /// The authority's folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// Folder for NAME.pem and NAME.key; the authority's folder by default.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Leave the federation running after the story and print how to reach it.
    #[arg(long)]
    pub keep: bool,
    /// Where the three cities keep their data; a fresh temporary folder by default.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Citizens: register, show, add an identifier, move home city.
    #[command(subcommand)]
    Citizen(CitizenCommand),
    /// Where a citizen's data lives, per category.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Consents: grant, withdraw, list.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Services: register, list, certify, decertify.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Resolve a citizen for a service and purpose; leaves an access record.
    Resolve(ResolveArgs),
    /// Follow a pointer held from before a storage switch to where the data lives now.
    Follow {
        /// The old pointer URI.
        old_uri: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        purpose: String,
    },
    /// Read a citizen's access log, newest first.
    AccessLog(AccessLogArgs),
    /// The federation: members and this node's Raft status.
    #[command(subcommand)]
    Federation(FederationCommand),
}

#[derive(Debug, Subcommand)]
pub enum CitizenCommand {
    /// Register a citizen in a home city; prints the new federation id.
    Register {
        #[arg(long)]
        home_city: String,
        /// SCHEME=VALUE, e.g. city-account=EHV-1234; repeatable.
        #[arg(long = "identifier", required = true)]
        identifiers: Vec<String>,
    },
    /// Show a citizen's home city, identifiers, data locations and consents.
    Show { citizen_id: String },
    /// Add an identifier a service may know the citizen by.
    AddIdentifier {
        citizen_id: String,
        /// SCHEME=VALUE.
        #[arg(long)]
        identifier: String,
    },
    /// Move the citizen's home city; pointers and consents follow.
    Move {
        citizen_id: String,
        #[arg(long)]
        to_city: String,
    },
    /// Replace the citizen's key in the keystore by a new one: the new key is added, signed
    /// by the old, then the old is removed, signed by the new.
    RotateKey { citizen_id: String },
    /// Remove one of the citizen's keys (e.g. of a lost device).
    RemoveKey { citizen_id: String, key_id: String },
    /// Erase the citizen from the federation: the index forgets them, every node compacts.
    Erase { citizen_id: String },
    /// Everything the index holds about the citizen, as one JSON document.
    Export { citizen_id: String },
    /// Operator: give a citizen who lost every key a new one, kept in this keystore.
    RecoverKey { citizen_id: String },
}

#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Set or switch where a category of the citizen's data lives.
    Set {
        citizen_id: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        uri: String,
        #[arg(long)]
        provider: String,
    },
    /// List the citizen's data locations with their history.
    List { citizen_id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Grant a service the use of attributes for one purpose.
    Grant {
        citizen_id: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        purpose: String,
        /// category.path, e.g. mobility.trips; repeatable.
        #[arg(long = "attribute", required = true)]
        attributes: Vec<String>,
        /// consent, contract, legal-obligation, vital-interest, public-task or
        /// legitimate-interest.
        #[arg(long, default_value = "consent")]
        legal_basis: String,
        /// End of validity, milliseconds since the Unix epoch.
        #[arg(long)]
        valid_until_ms: Option<u64>,
        /// The one identifier scheme by which the service may know the citizen.
        #[arg(long)]
        identity_scheme: Option<String>,
    },
    /// Withdraw a consent.
    Withdraw { citizen_id: String, consent_id: String },
    /// Give a consent again with a new end of validity.
    Renew {
        citizen_id: String,
        consent_id: String,
        /// New end of validity, milliseconds since the Unix epoch; until withdrawn if absent.
        #[arg(long)]
        valid_until_ms: Option<u64>,
    },
    /// Operator of the citizen's home city: end a consent on the city's authority.
    Revoke { consent_id: String },
    /// List a citizen's consents with their status now.
    List { citizen_id: String },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register a service with the purposes and attributes it declares.
    Register {
        service_id: String,
        #[arg(long)]
        organisation: String,
        /// PURPOSE=ATTR[;ATTR...], e.g. trip-planning=mobility.trips;mobility.pass;
        /// repeatable.
        #[arg(long = "declare", required = true)]
        declarations: Vec<String>,
    },
    /// List registered services with their certifications.
    List,
    /// Operator: certify a service, on the operator's city's authority, for some of the
    /// purposes and attributes it declared; replaces any earlier certification.
    #[command(group = clap::ArgGroup::new("until").required(true))]
    Certify {
        service_id: String,
        /// PURPOSE=ATTR[;ATTR...], as the service declared them or fewer; repeatable.
        #[arg(long = "declare", required = true)]
        declarations: Vec<String>,
        /// Valid for this many days from now.
        #[arg(long, group = "until")]
        days: Option<u64>,
        /// Valid until this moment, milliseconds since the Unix epoch.
        #[arg(long, group = "until")]
        valid_until_ms: Option<u64>,
    },
    /// Operator: withdraw a service's certification; it stops resolving at every city.
    Decertify { service_id: String },
}

#[derive(Debug, Clone, Args)]
pub struct ResolveArgs {
    /// SCHEME=VALUE the service knows the citizen by.
    #[arg(long)]
    pub identifier: String,
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub purpose: String,
    /// Only these attributes; all consented ones when absent. Repeatable.
    #[arg(long = "attribute")]
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct AccessLogArgs {
    pub citizen_id: String,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only records numbered below this one (the cursor a previous page printed).
    #[arg(long)]
    pub before: Option<u64>,
    /// Only this service's records.
    #[arg(long)]
    pub service: Option<String>,
    /// Only records for this purpose.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Read the whole log and check its hash chain instead of printing a page.
    #[arg(long, conflicts_with_all = ["before", "service", "purpose"])]
    pub verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// The member cities, and the Raft group with each node's role, progress and lag.
    Members,
    /// Operator: bring a started node into the federation as a learner, wait until it has
    /// caught up, then make it a voter.
    Join {
        #[arg(long)]
        node_id: u64,
        /// host:port of the new node's Raft listener.
        #[arg(long)]
        raft_addr: String,
        /// host:port of the new node's public API.
        #[arg(long)]
        api_addr: String,
        /// How long the new node may take to catch up.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Operator: take the node `--node` points at out of the federation.
    Leave,
    /// Operator: take another node out of the federation.
    Remove {
        #[arg(long)]
        node_id: u64,
    },
    /// The node's Raft role, leader, term and progress.
    Status,
    /// Operator: the longest any consent may last, federation-wide (0 lifts the limit).
    SetConsentLifetimeMax {
        #[arg(long)]
        days: u64,
    },
}
