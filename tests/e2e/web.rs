//! The web application as its people use it, over HTTP against the real server, the simulator
//! and a fresh database: a tenant connected and synced, and five people signed in through the
//! simulator's sign-in page, one per role.

use std::time::{Duration, Instant};

use attest_config::Config;
use attest_entra_sim::{ClientApp, SimHandle};
use attest_store::testing::TestDb;

use crate::harness::{attest, browser, location, sign_in_through_simulator};
use crate::sync::{add_entra, scratch, sim};

/// Someone signed in: their session cookie, CSRF token and who they are in the tenant.
#[derive(Clone, Debug)]
pub struct Person {
    pub cookie: String,
    pub csrf: String,
    pub object_id: String,
    /// As Attest names them in changes and the audit log.
    pub email: String,
}

/// A running Attest with a synced tenant and people in every role.
pub struct Web {
    pub base: String,
    pub sim: SimHandle,
    pub admin: Person,
    /// A second administrator, to approve what the first asks for.
    pub approver: Person,
    pub auditor: Person,
    /// Named as the connector's owner.
    pub owner: Person,
    /// Signed in, no role.
    pub requester: Person,
    pub dir: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The configuration sending Attest's mail to a test SMTP server on `port`.
pub fn smtp_config(port: u16) -> String {
    format!(
        "[mail]\nfrom = \"Attest <attest@example.com>\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_security = \"plain\"\n"
    )
}

/// Polls `check` every 50 ms for up to `limit`.
pub async fn eventually<F: std::future::Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Web {
    pub async fn boot(db: &TestDb) -> Web {
        Web::boot_with(db, "").await
    }

    /// Boots with extra configuration (TOML appended to the config file).
    pub async fn boot_with(db: &TestDb, extra: &str) -> Web {
        crate::harness::capture_logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sim = sim(Web::client_app(&base)).await;
        let (dir, config_file) = scratch();
        let mut text = std::fs::read_to_string(&config_file).unwrap();
        text.push_str(&format!("[server]\npublic_url = \"{base}\"\n{extra}"));
        std::fs::write(&config_file, text).unwrap();
        let secret_file = dir.join("client-secret");
        std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
        let people: Vec<(String, String, String)> = sim.sim.read(|t| {
            t.live_users()
                .filter(|u| u.user_type == "Member" && u.account_enabled && u.mail.is_some())
                .take(5)
                .map(|u| (u.id.clone(), u.user_principal_name.clone(), u.mail.clone().unwrap()))
                .collect()
        });
        assert_eq!(people.len(), 5, "the tenant has five members with mail");
        let cli = |args: Vec<String>| {
            let mut full = vec![
                "--config".to_owned(),
                config_file.clone(),
                "--database-url".to_owned(),
                db.url.expose().to_owned(),
            ];
            full.extend(args);
            async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
        };
        let mut add = add_entra(&sim, "contoso", &secret_file);
        add.extend(["--owner".to_owned(), people[3].2.clone()]);
        let added = cli(add).await;
        assert!(added.success, "{:?}", added.error);

        let mut config = Config::load(Some(std::path::Path::new(&config_file)), Vec::new()).unwrap();
        config.database.url = db.url.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(attest_server::run(config, attest_domain::clock::system(), listener, async move {
            let _ = stopped.await;
        }));
        // The scheduler's first full sync brings the people in.
        let store = db.store.clone();
        let synced = eventually(Duration::from_secs(60), || {
            let store = store.clone();
            async move { store.connectors().list_connectors().await.unwrap()[0].last_full_sync_at.is_some() }
        });
        assert!(synced.await, "the first sync ran");
        for (i, role) in [(0, "admin"), (1, "admin"), (2, "auditor")] {
            let upn = people[i].1.clone();
            let set =
                cli(vec!["admin".into(), "set-roles".into(), "--user".into(), upn, "--roles".into(), role.into()]);
            let set = set.await;
            assert!(set.success, "{:?}\n{}", set.error, set.stdout);
        }
        let mut signed = Vec::new();
        for (id, upn, _) in &people {
            signed.push(sign_in(&base, id, upn).await);
        }
        let mut signed = signed.into_iter();
        let mut next = || signed.next().unwrap();
        Web {
            admin: next(),
            approver: next(),
            auditor: next(),
            owner: next(),
            requester: next(),
            base,
            sim,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Up to `n` live users of the synced directory with a work email and no Attest account
    /// yet (people who never signed in), among its first 400.
    pub async fn people_without_accounts(
        &self,
        store: &attest_store::Store,
        n: usize,
    ) -> Vec<attest_domain::Principal> {
        let connector = store.connectors().list_connectors().await.unwrap().remove(0);
        let tenant = self.sim.tenant_id();
        let users = store
            .principals()
            .list_principals(connector.id, Some(attest_domain::PrincipalKind::User), 0, 400)
            .await
            .unwrap();
        let mut found = Vec::new();
        for p in users {
            if found.len() < n
                && p.data.deleted_at.is_none()
                && p.data.email.is_some()
                && store.web().find_web_user(&tenant, &p.data.external_id).await.unwrap().is_none()
            {
                found.push(p);
            }
        }
        found
    }

    /// The app registration the tests' tenants know (one multi-tenant app): its redirect URIs
    /// for sign-in and admin consent at `base`.
    pub fn client_app(base: &str) -> ClientApp {
        ClientApp::attest(21)
            .with_provisioning()
            .with_redirect_uri(&format!("{base}/auth/callback"))
            .with_redirect_uri(&format!("{base}/setup/callback"))
    }

    /// `GET path` as `who` (nobody when `None`): status and body.
    pub async fn get(&self, who: Option<&Person>, path: &str) -> (u16, String) {
        let mut request = browser().get(format!("{}{path}", self.base));
        if let Some(who) = who {
            request = request.header("cookie", &who.cookie);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `POST path` as `who` with `form`, plus their CSRF token unless `csrf` says otherwise.
    pub async fn post_with(
        &self,
        who: Option<&Person>,
        path: &str,
        form: &[(&str, &str)],
        csrf: Option<&str>,
    ) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf));
        }
        let mut request = browser().post(format!("{}{path}", self.base)).form(&fields);
        if let Some(who) = who {
            request = request.header("cookie", &who.cookie);
        }
        request.send().await.unwrap()
    }

    /// `POST path` as `who`, with their CSRF token.
    pub async fn post(&self, who: &Person, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(Some(who), path, form, Some(&who.csrf)).await
    }

    /// A group Graph lets Attest change that `who` is not in, with a name no other group has
    /// (so it can be named in a form): its object id and name.
    pub fn group_to_join(&self, who: &Person) -> (String, String) {
        self.sim.sim.read(|t| {
            let g = t
                .live_groups()
                .find(|g| {
                    g.accepts_membership_writes()
                        && !g.members.contains(&who.object_id)
                        && t.live_groups().filter(|o| o.display_name == g.display_name).count() == 1
                })
                .unwrap();
            (g.id.clone(), g.display_name.clone())
        })
    }

    /// Stops the server and checks it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        if let Some(task) = self.task.take() {
            let stopped = tokio::time::timeout(Duration::from_secs(30), task).await;
            assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signs `upn` in through the simulator and returns their session.
pub async fn sign_in(base: &str, object_id: &str, upn: &str) -> Person {
    let (_, callback, binding) = sign_in_through_simulator(base, upn).await;
    let landed = browser().get(&callback).header("cookie", binding).send().await.unwrap();
    assert_eq!(landed.status().as_u16(), 303);
    let set = landed.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let me = browser().get(format!("{base}/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["object_id"].as_str(), Some(object_id));
    Person {
        cookie,
        csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        object_id: object_id.into(),
        email: me["email"].as_str().unwrap().to_owned(),
    }
}

/// The change a redirect points at: `/changes/{id}`.
pub fn change_id(response: &reqwest::Response) -> i64 {
    let to = location(response);
    to.strip_prefix("/changes/").unwrap_or_else(|| panic!("not a change: {to}")).parse().unwrap()
}

impl Web {
    /// Creates and starts a campaign over the members of `group` (object id), reviewed by
    /// `reviewer` (named), the approver as fallback, owned by the integration owner: its id.
    pub async fn campaign(&self, store: &attest_store::Store, group: &str, reviewer: &Person) -> i64 {
        let definition = format!(
            "name = \"Quarterly review\"\ndescription = \"Does each member still need it?\"\nowners = [\"{}\"]\n\
             [scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\nresources = [\"{group}\"]\n\
             entitlements = [\"member\"]\n[reviewers]\nmode = \"named\"\nnamed = [\"{}\"]\nfallback = [\"{}\"]\n",
            self.owner.email, reviewer.email, self.approver.email
        );
        let definition = attest_review::parse_definition(&definition).unwrap();
        let now = attest_domain::Clock::now(&attest_domain::SystemClock);
        let campaign = attest_review::create(store, &definition, "test", now).await.unwrap();
        attest_review::start(store, campaign.id, "test", now).await.unwrap();
        campaign.id
    }
}
