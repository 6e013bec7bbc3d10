//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! through WebDriver): a person signs in through the simulator's sign-in page, finds a user in
//! the directory, adds them to a group from the side panel, and the change lands in Entra.
//!
//! Without chromedriver the test is skipped with a message, except under `CI=true`, where that
//! is a failure (`.ci/run` installs both packages).

use std::process::Stdio;
use std::time::Duration;

use attest_store::db_test;
use fantoccini::{ClientBuilder, Locator};

use crate::web::{Web, eventually};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    // Held so chromedriver lives as long as the driver (killed on drop).
    _child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI must have {CHROMEDRIVER} (chromium-driver)");
            eprintln!(
                "skipping the browser test: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let ready = eventually(Duration::from_secs(20), || {
            let status = status.clone();
            async move {
                match attest_http::client().unwrap().get(&status).send().await {
                    Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
                    Err(_) => false,
                }
            }
        });
        assert!(ready.await, "chromedriver answered on {url}");
        Some(Driver { _child: child, url })
    }

    /// A headless Chromium with its own empty profile, kept off the network it cannot reach.
    async fn browser(&self, profile: &std::path::Path) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.unwrap()
    }
}

db_test!(a_person_signs_in_finds_a_user_and_adds_them_to_a_group_in_chromium, true, |db| {
    let Some(driver) = Driver::start().await else { return };
    let web = Web::boot(&db).await;
    let profile = web.dir.join("chromium-profile");
    let browser = driver.browser(&profile).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let admin = store.principals().find_user(connector.id, &web.admin.object_id).await.unwrap().unwrap();
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let (group_id, group_name) = web.group_to_join(&web.requester);

    // Sign in: the landing page, Microsoft's (the simulator's) sign-in page, back home.
    browser.goto(&web.base).await.unwrap();
    browser.find(Locator::LinkText("Sign in with Microsoft")).await.unwrap().click().await.unwrap();
    let login = browser.wait().for_element(Locator::Id("login")).await.unwrap();
    login.send_keys(admin.data.user_principal_name.as_deref().unwrap()).await.unwrap();
    browser.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    let heading = browser.wait().for_element(Locator::Css("main h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Dashboard");
    assert!(browser.source().await.unwrap().contains(&admin.data.display_name), "signed in as the administrator");

    // Find the user in the directory and open their page.
    browser.find(Locator::LinkText("People")).await.unwrap().click().await.unwrap();
    let search = browser.wait().for_element(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys(target.data.user_principal_name.as_deref().unwrap()).await.unwrap();
    browser.find(Locator::Css("form[action='/people'] button")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::LinkText(&target.data.display_name)).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("actions")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with(&format!("/principals/{}", target.id.0)));

    // The side panel: add them to the group; the change's page says it was applied.
    let panel = browser.find(Locator::Css("#actions input[name=group]")).await.unwrap();
    panel.send_keys(&group_name).await.unwrap();
    // As they type, the groups of that name are suggested (asked of the API by the page's
    // one script).
    let suggested = format!("#group-options option[value=\"{group_name}\"]");
    browser.wait().for_element(Locator::Css(&suggested)).await.unwrap();
    browser.find(Locator::Css("#actions input[name=group] ~ button")).await.unwrap().click().await.unwrap();
    let state = browser.wait().for_element(Locator::Id("change-state")).await.unwrap();
    assert!(state.text().await.unwrap().starts_with("applied"), "{}", browser.source().await.unwrap());
    assert!(web.sim.sim.read(|t| t.group(&group_id).unwrap().members.contains(&web.requester.object_id)));

    // Back on their page, the membership is listed as direct.
    browser.goto(&format!("{}/principals/{}", web.base, target.id.0)).await.unwrap();
    let access = browser.wait().for_element(Locator::Id("access")).await.unwrap().text().await.unwrap();
    assert!(access.lines().any(|l| l.contains(&group_name) && l.contains("direct")), "{access}");

    browser.close().await.unwrap();
    drop(driver);
    web.stop().await;
});

/// axe-core's script (the `axe-core` package from npm): `ATTEST_AXE`, else where `.ci/run`
/// installs it. `None` (the check skipped) outside CI when it is not installed.
fn axe_source() -> Option<String> {
    let path = std::env::var("ATTEST_AXE").ok().map(std::path::PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var("HOME").unwrap_or_default();
        std::path::Path::new(&home).join(".cache/attest-axe/node_modules/axe-core/axe.min.js")
    });
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) => {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI must have axe-core at {}", path.display());
            eprintln!("skipping the accessibility check: no axe-core at {} (npm install axe-core)", path.display());
            None
        }
    }
}

/// The serious and critical accessibility violations axe-core finds on the open page.
async fn violations(browser: &fantoccini::Client, axe: &str) -> Vec<String> {
    browser.execute(axe, vec![]).await.unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
               .filter(v => v.impact === 'serious' || v.impact === 'critical')
               .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                 v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// The elements of the open page whose content spills out of them unclipped (a long word, a
/// wide table outside a scrolling box), to say what made a page scroll sideways.
async fn overflowing(browser: &fantoccini::Client) -> String {
    let script = "return Array.from(document.querySelectorAll('main *')).filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 && getComputedStyle(e).overflowX === 'visible').slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || '').slice(0, 60)).join(' | ');";
    browser.execute(script, vec![]).await.map(|v| v.to_string()).unwrap_or_default()
}

/// Whether the open page fits its window's width (no sideways scrolling of the page itself).
async fn fits(browser: &fantoccini::Client) -> bool {
    let fits =
        browser.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![]).await.unwrap();
    fits == serde_json::Value::Bool(true)
}

db_test!(every_page_passes_axe_core_and_fits_a_phone_in_chromium, true, |db| {
    let Some(driver) = Driver::start().await else { return };
    let Some(axe) = axe_source() else { return };
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let profile = web.dir.join("chromium-axe-profile");
    let browser = driver.browser(&profile).await;
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let admin = store.principals().find_user(connector.id, &web.admin.object_id).await.unwrap().unwrap();
    let person = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let (groups, _) =
        store.directory().search_resources(attest_domain::ResourceKind::Group, "", None, 1, 0).await.unwrap();
    // A campaign the administrator reviews in, for the inbox and the campaign's pages.
    let campaign = web.campaign(&store, &groups[0].resource.data.external_id, &web.admin).await;
    // A requestable group and a request the administrator approves, for those pages.
    let entitlement = crate::access::requestable(&web, &store, &web.admin.email).await;
    let request = crate::access::ask_for(&web, &store, entitlement).await;
    // The administrator's own approved request for a role they activate in Entra themselves,
    // for the request page's "Activate in Entra".
    let activation = crate::access::awaiting_activation(&web, &store, &web.admin).await;
    // A change and a mail, for their pages.
    let actions = format!("/principals/{}/actions", person.id.0);
    let asked = web
        .post(&web.admin, &actions, &[("action", "block"), ("nonce", "nonce-axe-0123456789"), ("confirm", "yes")])
        .await;
    let change = crate::web::change_id(&asked);
    let queued = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            !store
                .outbox()
                .list_mail(&attest_store::MailFilter { limit: 1, ..Default::default() })
                .await
                .unwrap()
                .is_empty()
        }
    });
    assert!(queued.await, "the approval mail, for the outbox's pages");
    let mail = store.outbox().list_mail(&attest_store::MailFilter { limit: 1, ..Default::default() }).await.unwrap();

    // Signed out: the landing page and an error page.
    let mut report = Vec::new();
    for path in ["/", "/nowhere"] {
        browser.goto(&format!("{}{path}", web.base)).await.unwrap();
        report.extend(violations(&browser, &axe).await.into_iter().map(|v| format!("signed out {path}: {v}")));
    }
    // Signed in as an administrator, who sees every page.
    browser.goto(&web.base).await.unwrap();
    browser.find(Locator::LinkText("Sign in with Microsoft")).await.unwrap().click().await.unwrap();
    let login = browser.wait().for_element(Locator::Id("login")).await.unwrap();
    login.send_keys(admin.data.user_principal_name.as_deref().unwrap()).await.unwrap();
    browser.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("main h1")).await.unwrap();
    let pages: Vec<String> = attest_server::route_table()
        .into_iter()
        .filter(|r| r.method == "GET" && r.surface == attest_server::error::Surface::Page)
        .filter(|r| {
            !["/auth/", "/audit/export", "/healthz", "/readyz", "/metrics", "/assets/"]
                .iter()
                .any(|p| r.path.starts_with(p))
                && !r.path.contains("/export.")
        })
        .map(|r| {
            r.path
                .replace("/principals/{id}", &format!("/principals/{}", person.id.0))
                .replace("/resources/{id}", &format!("/resources/{}", groups[0].resource.id.0))
                .replace("/changes/{id}", &format!("/changes/{change}"))
                .replace("/admin/mail/{id}", &format!("/admin/mail/{}", mail.first().map_or(0, |m| m.id.0)))
                .replace("/campaigns/{id}", &format!("/campaigns/{campaign}"))
                .replace("/requests/new", &format!("/requests/new?entitlement={entitlement}"))
                .replace("/requests/{id}", &format!("/requests/{request}"))
                .replace("/connectors/{name}", "/connectors/contoso")
        })
        .chain(["/nowhere".to_owned(), format!("/requests/{activation}")])
        .collect();
    assert!(pages.len() >= 14, "{pages:?}");
    for path in &pages {
        browser.goto(&format!("{}{path}", web.base)).await.unwrap();
        report.extend(violations(&browser, &axe).await.into_iter().map(|v| format!("{path}: {v}")));
    }
    // The confirmation a destructive action asks for, reached as a person reaches it: a click.
    browser.set_window_size(360, 900).await.unwrap();
    browser.goto(&format!("{}/principals/{}", web.base, person.id.0)).await.unwrap();
    browser.find(Locator::Css("button[value=delete]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("confirm")).await.unwrap();
    report.extend(violations(&browser, &axe).await.into_iter().map(|v| format!("confirming a deletion: {v}")));
    assert!(fits(&browser).await, "the confirmation scrolls sideways at 360 px");
    assert!(report.is_empty(), "serious or critical accessibility violations:\n{}", report.join("\n"));

    // Screenshots at a phone's width and a desktop's, for a reviewer to look at, and no page
    // scrolls sideways on the phone.
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shown = [
        ("dashboard", "/".to_owned()),
        ("person", format!("/principals/{}", person.id.0)),
        ("changes", "/changes".to_owned()),
        ("error", "/nowhere".to_owned()),
        ("my-access", "/access".to_owned()),
        ("service-principals", "/service-principals".to_owned()),
        ("people", "/people".to_owned()),
        ("reviews", "/reviews".to_owned()),
        ("campaign", format!("/campaigns/{campaign}")),
        ("catalog", "/catalog".to_owned()),
        ("request-form", format!("/requests/new?entitlement={entitlement}")),
        ("requests", "/requests".to_owned()),
        ("approvals", "/approvals".to_owned()),
        ("request", format!("/requests/{request}")),
        ("request-activate", format!("/requests/{activation}")),
        ("connectors", "/connectors".to_owned()),
        ("connector", "/connectors/contoso".to_owned()),
        ("connector-form", "/connectors/new".to_owned()),
    ];
    // 360 px: the narrowest phone the layout is made for.
    for width in [360u32, 390, 1400] {
        browser.set_window_size(width, 900).await.unwrap();
        for (name, path) in &shown {
            browser.goto(&format!("{}{path}", web.base)).await.unwrap();
            let png = browser.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("{name}-{width}.png")), png).unwrap();
            assert!(fits(&browser).await, "{path} scrolls sideways at {width} px: {}", overflowing(&browser).await);
        }
    }
    browser.close().await.unwrap();
    drop(driver);
    web.stop().await;
});

db_test!(a_reviewer_follows_the_mail_link_and_bulk_revokes_in_chromium, true, |db| {
    let Some(driver) = Driver::start().await else { return };
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // A group with members, reviewed by an ordinary user.
    let group = web.sim.sim.read(|t| {
        t.live_groups()
            .find(|g| {
                g.accepts_membership_writes()
                    && g.members.iter().filter(|m| t.live_user(m).is_some()).count() >= 2
                    && !g.members.contains(&web.requester.object_id)
            })
            .unwrap()
            .id
            .clone()
    });
    let id = web.campaign(&store, &group, &web.requester).await;
    // The review job mails the reviewer (kept in the outbox here): the link is in the mail.
    let outbox = attest_notify::Outbox::new(store.clone(), &attest_config::MailConfig::default()).unwrap();
    let scheduler = attest_server::review_job::ReviewScheduler::new(
        store.clone(),
        outbox,
        &web.base,
        attest_domain::clock::system(),
        "test",
    );
    scheduler.scan(attest_domain::Clock::now(&attest_domain::SystemClock)).await.unwrap();
    let filter =
        attest_store::MailFilter { recipient: Some(web.requester.email.clone()), limit: 10, ..Default::default() };
    let mail = store.outbox().list_mail(&filter).await.unwrap();
    let mail = mail.iter().find(|m| m.template == "review_started").expect("the reviewer's mail");
    let link = mail.text_body.lines().find(|l| l.starts_with(&web.base)).expect("a link").trim().to_owned();
    assert!(link.ends_with(&format!("/reviews?campaign={id}")), "{link}");

    // Signed out, the link asks to sign in, then lands on the inbox.
    let profile = web.dir.join("chromium-review-profile");
    let browser = driver.browser(&profile).await;
    browser.goto(&link).await.unwrap();
    browser.find(Locator::LinkText("Sign in with Microsoft")).await.unwrap().click().await.unwrap();
    let login = browser.wait().for_element(Locator::Id("login")).await.unwrap();
    let upn = web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().user_principal_name.clone());
    login.send_keys(&upn).await.unwrap();
    browser.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("review-items")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), link);

    // Tick the first two, say why, revoke them together.
    let boxes = browser.find_all(Locator::Css("#review-items input[type=checkbox]")).await.unwrap();
    let mut picked = Vec::new();
    for b in boxes.iter().take(2) {
        picked.push(b.attr("value").await.unwrap().unwrap());
        b.click().await.unwrap();
    }
    browser.find(Locator::Id("justification")).await.unwrap().send_keys("moved to another project").await.unwrap();
    browser.find(Locator::Css("button[name=decision][value=revoke]")).await.unwrap().click().await.unwrap();
    // The inbox shows what is still pending: the two are gone from it. (The old page can still
    // be the one shown for a moment after the click, so the new one is waited for.)
    let mut source = String::new();
    for _ in 0..50 {
        source = browser.source().await.unwrap();
        if source.contains("id=\"review-items\"")
            && !picked.iter().any(|i| source.contains(&format!("id=\"item-{i}\"")))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for item in &picked {
        assert!(!source.contains(&format!("id=\"item-{item}\"")), "{item} decided");
    }
    browser.close().await.unwrap();
    drop(driver);

    // The owner closes; the workers remove the access in Entra; the evidence lists it.
    let items = store
        .reviews()
        .list_items(&attest_store::ItemFilter {
            ids: Some(picked.iter().map(|p| p.parse().unwrap()).collect()),
            limit: 2,
            instance: store.reviews().get_campaign(id).await.unwrap().instance.map(|i| i.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(items.iter().all(|i| i.decision == attest_domain::review::Decision::Revoke
        && i.justification.as_deref() == Some("moved to another project")));
    let members: Vec<String> = items.iter().map(|i| i.principal_object.clone()).collect();
    assert_eq!(web.post(&web.owner, &format!("/campaigns/{id}/close"), &[]).await.status().as_u16(), 303);
    assert_eq!(web.post(&web.owner, &format!("/campaigns/{id}/apply"), &[]).await.status().as_u16(), 303);
    let gone = eventually(Duration::from_secs(60), || {
        let (sim, members, group) = (web.sim.sim.clone(), members.clone(), group.clone());
        async move { sim.read(|t| members.iter().all(|m| !t.group(&group).unwrap().members.contains(m))) }
    });
    assert!(gone.await, "the access is gone in Entra");
    let (_, csv) = web.get(Some(&web.owner), &format!("/campaigns/{id}/export.csv")).await;
    let revoked = csv.lines().filter(|l| l.contains(",revoke,moved to another project,")).count();
    assert_eq!(revoked, 2, "{csv}");
    web.stop().await;
});

db_test!(a_person_asks_for_access_an_approver_approves_and_it_ends_on_time_in_chromium, true, |db| {
    let Some(driver) = Driver::start().await else { return };
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let entitlement = crate::access::requestable(&web, &store, &web.owner.email).await;
    let group = store.resources().get_entitlement(attest_domain::EntitlementId(entitlement)).await.unwrap();
    let group = store.resources().get_resource(group.data.resource_id).await.unwrap();
    let in_group = |yes: bool| {
        let held =
            web.sim.sim.read(|t| t.group(&group.data.external_id).unwrap().members.contains(&web.requester.object_id));
        async move { held == yes }
    };
    let upn = |id: &str| web.sim.sim.read(|t| t.live_user(id).unwrap().user_principal_name.clone());

    // The requester finds it in the catalog and asks for a minute.
    let requester = signed_in(&driver, &web, &upn(&web.requester.object_id), "chromium-requester").await;
    requester.find(Locator::LinkText("Request access")).await.unwrap().click().await.unwrap();
    let ask = format!("a[href='/requests/new?entitlement={entitlement}']");
    requester.wait().for_element(Locator::Css(&ask)).await.unwrap().click().await.unwrap();
    requester
        .wait()
        .for_element(Locator::Css("input[name=duration][value=other]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    requester.find(Locator::Id("request-other")).await.unwrap().send_keys("1m").await.unwrap();
    requester.find(Locator::Id("request-justification")).await.unwrap().send_keys("fix the build").await.unwrap();
    requester
        .find(Locator::Css("form[action='/requests/ask'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = requester.wait().for_element(Locator::Id("request-state")).await.unwrap();
    assert_eq!(state.text().await.unwrap(), "pending");
    let path = requester.current_url().await.unwrap().path().to_owned();

    // The approver finds it in their approvals and approves.
    let approver = signed_in(&driver, &web, &upn(&web.owner.object_id), "chromium-approver").await;
    approver.find(Locator::LinkText("Approvals")).await.unwrap().click().await.unwrap();
    let id = path.trim_start_matches("/requests/");
    let approve = format!("button[aria-label='Approve request {id}']");
    approver.wait().for_element(Locator::Css(&approve)).await.unwrap().click().await.unwrap();
    approver.wait().for_element(Locator::Id("timeline")).await.unwrap();
    approver.close().await.unwrap();

    // `attest serve` gives it in Entra; the requester's page says active; a minute later it is
    // removed by itself.
    assert!(eventually(Duration::from_secs(30), || in_group(true)).await, "given in Entra");
    let active = eventually(Duration::from_secs(30), || {
        let requester = &requester;
        let url = format!("{}{path}", web.base);
        async move {
            requester.goto(&url).await.unwrap();
            requester.find(Locator::Id("request-state")).await.unwrap().text().await.unwrap().starts_with("active")
        }
    });
    assert!(active.await, "active");
    assert!(eventually(Duration::from_secs(100), || in_group(false)).await, "removed in Entra when it ended");
    let expired = eventually(Duration::from_secs(30), || {
        let requester = &requester;
        let url = format!("{}{path}", web.base);
        async move {
            requester.goto(&url).await.unwrap();
            requester.find(Locator::Id("request-state")).await.unwrap().text().await.unwrap() == "expired"
        }
    });
    assert!(expired.await, "expired");
    requester.close().await.unwrap();
    drop(driver);
    web.stop().await;
});

/// Signs `upn` in through the simulator's sign-in page in a fresh browser.
/// The text of the element with `id` once it contains `wanted` (within 10 s), else the last
/// text read: right after a click the page may still be the one the click left, whose
/// element goes stale as the next page loads.
async fn text_when(browser: &fantoccini::Client, id: &str, wanted: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = browser.find(Locator::Id(id)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(wanted) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

async fn signed_in(driver: &Driver, web: &Web, upn: &str, profile: &str) -> fantoccini::Client {
    let browser = driver.browser(&web.dir.join(profile)).await;
    browser.goto(&web.base).await.unwrap();
    browser.find(Locator::LinkText("Sign in with Microsoft")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("login")).await.unwrap().send_keys(upn).await.unwrap();
    browser.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("main h1")).await.unwrap();
    browser
}

db_test!(an_admin_connects_a_tenant_and_its_owner_finishes_from_the_mail_in_chromium, true, |db| {
    use attest_notify::test_smtp::{Handler, ServerTls, SmtpServer, decode_quoted_printable, free_port, header};
    let Some(driver) = Driver::start().await else { return };
    let smtp = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let web = Web::boot_with(&db, &crate::web::smtp_config(smtp.port)).await;
    let store = db.store.clone();
    let fabrikam = crate::setup::subsidiary(&web.base).await;
    let domain = fabrikam.sim.read(|t| t.domain.clone());
    let upn = |id: &str| web.sim.sim.read(|t| t.live_user(id).unwrap().user_principal_name.clone());

    // The administrator connects the tenant from the web, naming the owner.
    let admin = signed_in(&driver, &web, &upn(&web.admin.object_id), "chromium-setup-admin").await;
    admin.find(Locator::LinkText("Connectors")).await.unwrap().click().await.unwrap();
    admin.wait().for_element(Locator::LinkText("Connect a tenant")).await.unwrap().click().await.unwrap();
    admin.wait().for_element(Locator::Id("connector-name")).await.unwrap().send_keys("fabrikam").await.unwrap();
    admin.find(Locator::Id("connector-tenant")).await.unwrap().send_keys(&domain).await.unwrap();
    admin.find(Locator::Css("input[name=cloud][value=custom]")).await.unwrap().click().await.unwrap();
    admin.find(Locator::Id("connector-graph")).await.unwrap().send_keys(&fabrikam.graph_url).await.unwrap();
    admin.find(Locator::Id("connector-login")).await.unwrap().send_keys(&fabrikam.login_url).await.unwrap();
    admin.find(Locator::Id("connector-owners")).await.unwrap().send_keys(&web.requester.email).await.unwrap();
    admin
        .find(Locator::Css("form[action='/connectors/add'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = admin.wait().for_element(Locator::Id("connector-status")).await.unwrap();
    assert!(status.text().await.unwrap().starts_with("Awaiting consent"), "{}", admin.source().await.unwrap());
    assert!(admin.current_url().await.unwrap().path().ends_with("/connectors/fabrikam"));

    // The owner's mail arrives at the SMTP server with their link.
    let messages = smtp
        .wait_until("the owner's setup mail", |m| {
            m.iter().any(|m| header(m, "To").is_some_and(|to| to.contains(&web.requester.email)))
        })
        .await;
    let message =
        messages.iter().find(|m| header(m, "To").is_some_and(|to| to.contains(&web.requester.email))).unwrap();
    let body = decode_quoted_printable(message);
    let at = body.find(&format!("{}/setup/", web.base)).unwrap();
    let link: String = body[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<').collect();
    assert!(body.contains("GroupMember.ReadWrite.All"), "{body}");

    // The owner follows it, signs in, and accepts on Microsoft's (the simulator's) page as the
    // tenant's administrator: the permissions are verified and the first sync runs.
    let owner = signed_in(&driver, &web, &upn(&web.requester.object_id), "chromium-setup-owner").await;
    owner.goto(&link).await.unwrap();
    owner.wait().for_element(Locator::Id("continue-to-microsoft")).await.unwrap().click().await.unwrap();
    owner.wait().for_element(Locator::Id("accept")).await.unwrap().click().await.unwrap();
    let status = owner.wait().for_element(Locator::Id("connector-status")).await.unwrap();
    assert!(status.text().await.unwrap().starts_with("Connected"), "{}", owner.source().await.unwrap());
    let checklist = owner.find(Locator::Css("#checklist + p + div table")).await.unwrap().text().await.unwrap();
    assert!(checklist.contains("granted") && !checklist.contains("missing"), "{checklist}");
    let synced = eventually(Duration::from_secs(60), || {
        let (owner, url) = (&owner, format!("{}/connectors/fabrikam", web.base));
        async move {
            owner.goto(&url).await.unwrap();
            let sync = owner.find(Locator::Id("connector-sync")).await.unwrap().text().await.unwrap();
            sync.contains("succeeded")
        }
    });
    assert!(synced.await, "the first sync completes: {}", owner.source().await.unwrap());
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, attest_domain::ConnectorStatus::Connected);
    owner.close().await.unwrap();
    admin.close().await.unwrap();
    drop(driver);
    fabrikam.shutdown().await;
    web.stop().await;
});

db_test!(an_admin_imports_people_with_a_role_and_links_the_break_glass_account_in_chromium, true, |db| {
    let Some(driver) = Driver::start().await else { return };
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let tenant = web.sim.tenant_id();
    // Two people who never signed in, with a surname to search by.
    let mut fresh = web.people_without_accounts(&store, 50).await;
    let person = fresh.remove(0);
    let surname = person.data.display_name.split_whitespace().last().unwrap().to_owned();
    let local = store
        .web()
        .set_web_user_roles(
            attest_store::LOCAL_TENANT,
            "break-glass",
            "Break-glass administrator",
            &["admin".to_owned()],
            attest_domain::Clock::now(&attest_domain::SystemClock),
        )
        .await
        .unwrap();
    let upn = web.sim.sim.read(|t| t.live_user(&web.admin.object_id).unwrap().user_principal_name.clone());
    let admin = signed_in(&driver, &web, &upn, "chromium-accounts-admin").await;
    admin.find(Locator::LinkText("Accounts")).await.unwrap().click().await.unwrap();
    admin.wait().for_element(Locator::Id("import-q")).await.unwrap().send_keys(&surname).await.unwrap();
    admin.find(Locator::Css("form[action='/admin/accounts#import'] button")).await.unwrap().click().await.unwrap();
    let checkbox = format!("input[name=people][value='{}']", person.id.0);
    admin.wait().for_element(Locator::Css(&checkbox)).await.unwrap().click().await.unwrap();
    admin.find(Locator::Css("#import-role option[value=auditor]")).await.unwrap().click().await.unwrap();
    admin.find(Locator::Css("form[action='/admin/accounts/import'] button")).await.unwrap().click().await.unwrap();
    let list = text_when(&admin, "account-list", &person.data.display_name).await;
    assert!(list.contains(&person.data.display_name) && list.contains("imported"), "{list}");
    let account = store.web().find_web_user(&tenant, &person.data.external_id).await.unwrap().unwrap();
    assert_eq!(account.roles, vec!["auditor".to_owned()]);
    // The break-glass account, linked to another person found by the search.
    let other =
        fresh.into_iter().find(|p| p.data.display_name.split_whitespace().last() != Some(surname.as_str())).unwrap();
    let other_surname = other.data.display_name.split_whitespace().last().unwrap().to_owned();
    admin.goto(&format!("{}/admin/accounts?q={}", web.base, other_surname)).await.unwrap();
    admin
        .wait()
        .for_element(Locator::Css(&format!("#link-account option[value='{}']", local.id)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    admin
        .find(Locator::Css(&format!("#link-person option[value='{}']", other.id.0)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    admin.find(Locator::Css("form[action='/admin/accounts/link'] button")).await.unwrap().click().await.unwrap();
    let linked = crate::web::eventually(std::time::Duration::from_secs(10), || {
        let (store, tenant, object_id) = (store.clone(), tenant.clone(), other.data.external_id.clone());
        async move { store.web().find_web_user(&tenant, &object_id).await.unwrap().is_some_and(|u| u.id == local.id) }
    });
    assert!(linked.await, "the break-glass account is now that person's");
    admin.close().await.unwrap();
    drop(driver);
    web.stop().await;
});
