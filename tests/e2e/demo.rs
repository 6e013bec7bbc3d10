//! `attest demo`: from nothing to a signed-in administrator browsing the synced directory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{browser, sign_in_through_simulator};

/// Output the test can read while the demo runs.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_from_nothing_and_an_administrator_signs_in() {
    let dir = std::env::temp_dir().join(format!("attest-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("left-over"), "from an earlier run").unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let out = Shared::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut writer = out.clone();
    let demo = attest_cli::demo_until(port, 200, dir.clone(), &mut writer, async move {
        let _ = stopped.await;
    });
    let base = format!("http://127.0.0.1:{port}");
    let visit = async {
        // Wait until the demo says who to sign in as.
        let mut admin = None;
        for _ in 0..600 {
            if let Some(line) = out.text().lines().find(|l| l.contains("(an administrator)")) {
                admin = line.split("sign in as ").nth(1).and_then(|rest| rest.split(' ').next()).map(str::to_owned);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = admin.unwrap_or_else(|| panic!("the demo did not start: {}", out.text()));
        let text = out.text();
        let second =
            text.lines().find(|l| l.contains("is a second administrator")).map(|l| l.split(' ').next().unwrap());
        assert!(second.is_some_and(|s| s != admin && s.contains('@')), "a second administrator approves: {text}");
        assert!(!dir.join("left-over").exists(), "the demo starts from an empty directory");
        // Sign in through the simulator's page as the administrator.
        let (_, callback, binding) = sign_in_through_simulator(&base, &admin).await;
        let landed = browser().get(&callback).header("cookie", binding).send().await.unwrap();
        assert_eq!(landed.status().as_u16(), 303);
        let cookie = landed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let page = |path: &str| {
            let (url, cookie) = (format!("{base}{path}"), cookie.clone());
            async move { browser().get(url).header("cookie", cookie).send().await.unwrap().text().await.unwrap() }
        };
        let dashboard = page("/").await;
        assert!(dashboard.contains("<h1>Dashboard</h1>") && dashboard.contains(">demo<"), "{dashboard}");
        assert!(dashboard.contains("(admin"), "the administrator's role is shown");
        // A running access review with items for the administrators, linked from the dashboard.
        assert!(out.text().contains("an access review is running"), "{}", out.text());
        assert!(
            dashboard.contains("id=\"reviews-waiting\"") && dashboard.contains("Quarterly access review"),
            "{dashboard}"
        );
        // Two stages: the administrators review, then the campaign's owner signs off.
        let campaign = page("/campaigns/1").await;
        assert!(campaign.contains("1 of 2 (one revoke revokes)"), "{campaign}");
        assert!(campaign.contains("1 not sure"), "one answer is already in: {campaign}");
        let reviews = page("/reviews").await;
        assert!(reviews.contains("id=\"review-items\"") && reviews.contains("Accept recommendations"), "{reviews}");
        let people = page("/people").await;
        assert!(people.contains(&admin) && people.contains("matches"), "{people}");
        // A request waits for the administrators' approval, and the catalog offers access.
        assert!(out.text().contains("waits for an administrator's approval"), "{}", out.text());
        assert!(dashboard.contains("id=\"requests-waiting\""), "{dashboard}");
        let approvals = page("/approvals").await;
        assert!(approvals.contains("Covering the on-call rota") && approvals.contains("OPS-1042"), "{approvals}");
        // The administrator may activate a directory role in Entra themselves (PIM): the demo
        // says where, and the request's page offers it.
        let text = out.text();
        let line = text
            .lines()
            .find(|l| l.contains("waits for them to activate it in Entra"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.starts_with(&admin), "{line}");
        let request = page(line.rsplit(base.as_str()).next().unwrap()).await;
        assert!(request.contains("Activate in Entra") && request.contains("Helpdesk Administrator"), "{request}");
        let catalog = page("/catalog").await;
        assert!(catalog.contains("nobody: given at once") && catalog.contains("30 days"), "{catalog}");
        // The approvers' mail is in the outbox once the access job has run.
        let mailed = crate::web::eventually(std::time::Duration::from_secs(20), || {
            let page = &page;
            async move { page("/admin/mail").await.contains("Approval needed:") }
        });
        assert!(mailed.await, "the approvers are mailed");
        // Entra's provisioning service (simulated) pushes the tenant over SCIM: accounts arrive.
        assert!(out.text().contains(&format!("{base}/admin/accounts")), "{}", out.text());
        let provisioned = crate::web::eventually(std::time::Duration::from_secs(60), || {
            let page = &page;
            async move { page("/admin/accounts").await.contains("provisioned by Entra") }
        });
        assert!(provisioned.await, "the demo's accounts arrive over SCIM");
        // Mail is kept, not sent, and the demo says where to read it.
        assert!(out.text().contains(&format!("{base}/admin/mail")), "{}", out.text());
        assert!(dashboard.contains("href=\"/admin/mail\""), "the administrator's menu links the outbox");
        let outbox = page("/admin/mail").await;
        assert!(outbox.contains("<h1>Mail</h1>") && outbox.contains("id=\"mail-kept\""), "{outbox}");
        // A second tenant waits for its integration owner, whose setup mail is in the outbox: they
        // sign in, follow it, and the tenant's administrator accepts on Microsoft's (the
        // simulator's) page; the tenant is connected.
        let text = out.text();
        let line =
            text.lines().find(|l| l.contains("waits for its integration owner")).unwrap_or_else(|| panic!("{text}"));
        let owner_upn = line.split("who signs in as ").nth(1).and_then(|r| r.split(')').next()).unwrap().to_owned();
        let connectors = page("/connectors").await;
        assert!(connectors.contains(">emea<") && connectors.contains("awaiting consent"), "{connectors}");
        let mail_id = outbox
            .split("href=\"/admin/mail/")
            .skip(1)
            .find(|rest| rest.split("</tr>").next().is_some_and(|row| row.contains("asks you to connect the tenant")))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the setup mail is in the outbox: {outbox}"))
            .to_owned();
        // The page escapes the text as HTML, `/` included.
        let mail = page(&format!("/admin/mail/{mail_id}")).await.replace("&#x2f;", "/");
        let at = mail.find("/setup/").unwrap_or_else(|| panic!("mail {mail_id}: {mail}"));
        let link: String = mail[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c)).collect();
        let (_, callback, binding) = sign_in_through_simulator(&base, &owner_upn).await;
        let landed = browser().get(&callback).header("cookie", binding).send().await.unwrap();
        let owner = landed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let as_owner = |path: String| {
            let owner = owner.clone();
            async move { browser().get(path).header("cookie", owner).send().await.unwrap() }
        };
        let setup = as_owner(format!("{base}{link}")).await.text().await.unwrap();
        assert!(setup.contains("Continue to Microsoft"), "{setup}");
        let consent = crate::harness::location(&as_owner(format!("{base}{link}/consent")).await);
        let consent_page = browser().get(&consent).send().await.unwrap().text().await.unwrap();
        let admin_login = consent_page
            .split("id=\"login\"")
            .nth(1)
            .and_then(|r| r.split("value=\"").nth(1))
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_owned();
        let (endpoint, query) = consent.split_once('?').unwrap();
        let mut form: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        form.extend([("login".to_owned(), admin_login), ("accept".to_owned(), "1".to_owned())]);
        let answered = browser().post(endpoint).form(&form).send().await.unwrap();
        let back = as_owner(crate::harness::location(&answered)).await;
        assert_eq!(crate::harness::location(&back), "/connectors/emea#checklist");
        let emea = as_owner(format!("{base}/connectors/emea")).await.text().await.unwrap();
        assert!(emea.contains("Connected</strong>: connected on"), "{emea}");
        // Commands work on the demo with the attest.toml it wrote (absolute paths, its port).
        let config = dir.join("attest.toml");
        assert!(
            out.text().contains(&format!("--config {}", config.canonicalize().unwrap().display())),
            "{}",
            out.text()
        );
        let config = config.display().to_string();
        let listed = crate::harness::attest(&["--config", &config, "connector", "list"]).await;
        assert!(listed.success && listed.stdout.contains("demo"), "{:?}\n{}", listed.error, listed.stdout);
        let link = crate::harness::attest(&["--config", &config, "admin", "create-login-link"]).await;
        assert!(
            link.success && link.stdout.starts_with(&format!("{base}/auth/link/")),
            "{:?}\n{}",
            link.error,
            link.stdout
        );
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(demo, visit);
    assert!(result.is_ok(), "{result:?}\n{}", out.text());
    let _ = std::fs::remove_dir_all(&dir);
}
