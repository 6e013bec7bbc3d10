//! `attest connector add|list|check`: connecting an Entra tenant and checking it is ready.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use attest_config::secrets::SecretKey;
use attest_domain::Connector;
use attest_entra::sync::EntraSettings;
use attest_entra::{Readiness, stored};
use attest_store::{NewConnector, Store};
use clap::{Args, Subcommand};

use super::Context;

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Connect a directory. The client secret is read from a file and stored encrypted.
    #[command(subcommand)]
    Add(AddCommand),
    /// List connectors and where each stands.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change what a connector syncs (its scope) and how often a delta re-reads application
    /// role assignments; prints the resulting settings. Takes effect at the next sync (a full
    /// sync applies a narrower scope to what is already stored).
    Configure(ConfigureArgs),
    /// Check a connector's credentials and, per feature, the Graph permissions and licences it
    /// lacks. Exits 1 when the connector cannot sync.
    Check {
        /// The connector's name.
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The connector's name.
    name: String,
    #[arg(long, value_name = "BOOL")]
    include_guests: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    include_disabled_users: Option<bool>,
    /// Groups synchronised from on-premises Active Directory.
    #[arg(long, value_name = "BOOL")]
    include_on_premises_groups: Option<bool>,
    /// Microsoft's own applications as resources.
    #[arg(long, value_name = "BOOL")]
    include_first_party_apps: Option<bool>,
    /// Only these groups (object ids, comma-separated) are resources; an empty value means all.
    #[arg(long, value_name = "IDS", value_delimiter = ',', num_args = 0..)]
    groups: Option<Vec<String>>,
    /// How old the last read of application role assignments may be before a delta re-reads
    /// them (0: every delta).
    #[arg(long, value_name = "MINUTES")]
    app_assignments_refresh_minutes: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// A Microsoft Entra tenant, through an app registration with application permissions.
    Entra(AddEntra),
}

#[derive(Debug, Args)]
pub struct AddEntra {
    /// A unique name for the connector (used by `attest sync NAME`).
    #[arg(long)]
    name: String,
    /// The directory (tenant) id.
    #[arg(long)]
    tenant_id: String,
    /// The app registration's application (client) id.
    #[arg(long)]
    client_id: String,
    /// A file holding the client secret's value (not its id); `-` reads standard input.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["certificate_file", "generate_certificate"],
        conflicts_with_all = ["certificate_file", "generate_certificate"]
    )]
    client_secret_file: Option<PathBuf>,
    /// Certificate credentials Attest generates: an RSA key kept (encrypted) by Attest and a
    /// self-signed certificate valid two years, printed to upload to the app registration.
    #[arg(long, conflicts_with = "certificate_file")]
    generate_certificate: bool,
    /// Certificate credentials instead of a secret: the certificate uploaded to the app
    /// registration (PEM), with `--private-key-file`.
    #[arg(long, value_name = "FILE", requires = "private_key_file")]
    certificate_file: Option<PathBuf>,
    /// The certificate's private key (unencrypted PKCS#8 PEM); stored encrypted.
    #[arg(long, value_name = "FILE", requires = "certificate_file")]
    private_key_file: Option<PathBuf>,
    /// Microsoft Graph's base URL (national clouds differ).
    #[arg(long, value_name = "URL", default_value = "https://graph.microsoft.com")]
    graph_url: String,
    /// The identity platform's base URL (national clouds differ).
    #[arg(long, value_name = "URL", default_value = "https://login.microsoftonline.com")]
    login_url: String,
    /// An integration owner's email, asked to finish setup (repeatable).
    #[arg(long = "owner", value_name = "EMAIL")]
    owners: Vec<String>,
    /// Store the connector without checking the credentials against the tenant.
    #[arg(long)]
    no_check: bool,
    /// What the connector is for, comma-separated: `sync` (always on), `sign-in-activity`,
    /// `pim`, `provisioning`. Its owners are asked for these features' permissions, and the
    /// check requires them.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "sync,sign-in-activity,pim,provisioning")]
    features: Vec<String>,
}

/// The features named on the command line.
fn features(names: &[String]) -> anyhow::Result<attest_entra::sync::settings::Features> {
    let mut features =
        attest_entra::sync::settings::Features { provisioning: false, sign_in_activity: false, pim: false };
    for name in names.iter().map(|n| n.trim().to_lowercase()) {
        match name.as_str() {
            "" | "sync" => {}
            "sign-in-activity" => features.sign_in_activity = true,
            "pim" => features.pim = true,
            "provisioning" => features.provisioning = true,
            other => anyhow::bail!("--features: '{other}' is not sync, sign-in-activity, pim or provisioning"),
        }
    }
    Ok(features)
}

pub async fn run(context: &Context, command: ConnectorCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.store().await?;
    match command {
        ConnectorCommand::Add(AddCommand::Entra(args)) => add_entra(context, &store, args, out).await,
        ConnectorCommand::List { json } => {
            let connectors = store.connectors().list_connectors().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&connectors)?)?;
            } else if connectors.is_empty() {
                writeln!(out, "no connectors yet: add one with `attest connector add entra`")?;
            } else {
                for c in &connectors {
                    let synced =
                        c.last_synced_at().map_or_else(|| "never synced".to_owned(), |t| format!("synced {t}"));
                    let tenant = c.tenant_id.as_deref().unwrap_or("-");
                    writeln!(out, "{}\t{}\ttenant {tenant}\t{}\t{synced}", c.name, c.kind, c.status)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectorCommand::Configure(args) => {
            let connector = find(&store, &args.name).await?;
            let mut settings = EntraSettings::from_json(&connector.settings).map_err(anyhow::Error::msg)?;
            let scope = &mut settings.scope;
            if let Some(v) = args.include_guests {
                scope.include_guests = v;
            }
            if let Some(v) = args.include_disabled_users {
                scope.include_disabled_users = v;
            }
            if let Some(v) = args.include_on_premises_groups {
                scope.include_on_premises_groups = v;
            }
            if let Some(v) = args.include_first_party_apps {
                scope.include_first_party_apps = v;
            }
            if let Some(groups) = args.groups {
                scope.groups = groups.into_iter().map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect();
            }
            if let Some(minutes) = args.app_assignments_refresh_minutes {
                settings.app_assignments_refresh_minutes = minutes;
            }
            store.connectors().set_connector_settings(connector.id, &settings.to_json(), crate::now()).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&settings.to_json())?)?;
            Ok(ExitCode::SUCCESS)
        }
        ConnectorCommand::Check { name, json } => {
            let connector = find(&store, &name).await?;
            let report = check(context, &store, &connector).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                print_report(&connector.name, &report, out)?;
            }
            Ok(if report.can_sync() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// The connector named `name`, or an error listing the ones that exist.
pub async fn find(store: &Store, name: &str) -> anyhow::Result<Connector> {
    if let Some(connector) = store.connectors().find_connector_by_name(name).await? {
        return Ok(connector);
    }
    let names: Vec<String> = store.connectors().list_connectors().await?.into_iter().map(|c| c.name).collect();
    if names.is_empty() {
        anyhow::bail!(
            "there is no connector named '{name}' (none exist yet: add one with `attest connector add entra`)"
        )
    }
    anyhow::bail!("there is no connector named '{name}'; connectors: {}", names.join(", "))
}

/// The HTTP client every connector uses.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    attest_server::http_client().map_err(anyhow::Error::msg)
}

/// The credentials given to `connector add entra`. No `Debug`: they hold a secret.
enum Given {
    Secret(String),
    /// A certificate and its private key, PEM.
    Certificate(String, String),
}

async fn add_entra(context: &Context, store: &Store, args: AddEntra, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let read = |path: &PathBuf, what: &str| -> anyhow::Result<String> {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_line(&mut text)
                .with_context(|| format!("cannot read the {what} from standard input"))?;
            Ok(text)
        } else {
            std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} file {}", path.display()))
        }
    };
    // The secret, or the certificate and its key (clap makes sure it is one of them).
    let credentials = match (&args.client_secret_file, &args.certificate_file, &args.private_key_file) {
        (Some(secret_file), _, _) => {
            let secret = read(secret_file, "client secret")?.trim().to_owned();
            if secret.is_empty() {
                anyhow::bail!("the client secret file is empty");
            }
            Given::Secret(secret)
        }
        (None, Some(certificate), Some(key)) => {
            let (certificate, key) = (read(certificate, "certificate")?, read(key, "private key")?);
            // Checked before anything is stored, so a refused pair leaves nothing half-made.
            attest_entra::certificate::ClientCertificate::from_pem(&certificate, &key)
                .map_err(|e| anyhow::anyhow!("--certificate-file / --private-key-file: {e}"))?;
            Given::Certificate(certificate, key)
        }
        (None, None, None) if args.generate_certificate => {
            let name = format!("Attest {}", args.name.trim());
            let (certificate, key) =
                attest_entra::certificate::ClientCertificate::generate(&name, crate::now().date_naive(), 730)
                    .map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "generated a certificate (thumbprint {}): upload it to the app registration (Certificates & secrets):\n{}",
                certificate.thumbprint(),
                certificate.certificate_pem()
            )?;
            Given::Certificate(certificate.certificate_pem().to_owned(), key)
        }
        _ => anyhow::bail!(
            "give --client-secret-file, --certificate-file with --private-key-file, or --generate-certificate"
        ),
    };
    for (flag, url) in [("--graph-url", &args.graph_url), ("--login-url", &args.login_url)] {
        url::Url::parse(url).with_context(|| format!("{flag}: not a URL: {url}"))?;
    }
    let key = SecretKey::load_or_create(&context.config.secret_key_file)?;
    let settings = EntraSettings {
        graph_url: args.graph_url.trim_end_matches('/').to_owned(),
        login_url: args.login_url.trim_end_matches('/').to_owned(),
        features: features(&args.features)?,
        ..EntraSettings::default()
    };
    let now = crate::now();
    let new = NewConnector {
        tenant_id: Some(args.tenant_id.trim().to_owned()),
        settings: settings.to_json(),
        owners: args.owners.clone(),
        ..NewConnector::entra(args.name.trim())
    };
    let connector = store.connectors().create_connector(new, now).await?;
    let (sealed, what) = match &credentials {
        Given::Secret(secret) => {
            (stored::seal_credentials(&key, connector.id, args.client_id.trim(), secret)?, "client secret")
        }
        Given::Certificate(certificate, private_key) => (
            stored::seal_certificate(&key, connector.id, args.client_id.trim(), certificate, private_key)?,
            "certificate's private key",
        ),
    };
    store.connectors().set_connector_credentials(connector.id, Some(sealed), now).await?;
    writeln!(out, "connector '{}' added; its {what} is stored encrypted", connector.name)?;
    if args.no_check {
        return Ok(ExitCode::SUCCESS);
    }
    let report = check(context, store, &connector).await?;
    print_report(&connector.name, &report, out)?;
    Ok(if report.can_sync() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs the readiness check and records the connector's status from it.
async fn check(context: &Context, store: &Store, connector: &Connector) -> anyhow::Result<Readiness> {
    let key = SecretKey::load(&context.config.secret_key_file)?;
    let (report, _) = attest_server::setup::assess(store, &key, connector, "cli", crate::now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(report)
}

fn print_report(name: &str, report: &Readiness, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(problem) = &report.problem {
        writeln!(out, "{name}: cannot sign in: {problem}")?;
        return Ok(());
    }
    writeln!(out, "{name}: signed in; the app holds {} application permission(s)", report.granted.len())?;
    for feature in &report.features {
        let mark = if feature.ready { "ready" } else { "NOT READY" };
        writeln!(out, "  {:<17} {mark}", feature.feature)?;
        for permission in &feature.missing_permissions {
            writeln!(out, "      missing permission {permission} (application permission, needs admin consent)")?;
        }
        for problem in &feature.problems {
            writeln!(out, "      {problem}")?;
        }
    }
    Ok(())
}
