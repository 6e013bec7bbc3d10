//! The change queue from the command line, against the simulator: user actions, the approval
//! gate, a password shown once, list / show / cancel / retry.

use attest_entra_sim::ClientApp;
use attest_store::db_test;

use crate::harness::attest;
use crate::sync::{add_entra, scratch, sim};

db_test!(user_actions_go_through_the_queue_with_approval_and_apply_in_entra, true, |db| {
    let sim = sim(ClientApp::attest(21).with_provisioning()).await;
    let (dir, config) = scratch();
    let url = db.url.expose().to_owned();
    let run = |config: String, args: Vec<&str>| {
        let mut full = vec!["--config".to_owned(), config, "--database-url".to_owned(), url.clone()];
        full.extend(args.into_iter().map(str::to_owned));
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
    let added =
        run(config.clone(), add_entra(&sim, "contoso", &secret_file).iter().map(String::as_str).collect()).await;
    assert!(added.success && added.stdout.contains("provisioning      ready"), "{:?}\n{}", added.error, added.stdout);
    assert!(run(config.clone(), vec!["sync"]).await.success);
    let members: Vec<(String, String, String)> = sim.sim.read(|t| {
        t.live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member")
            .take(4)
            .map(|u| {
                (u.id.clone(), u.user_principal_name.clone(), u.mail.clone().unwrap_or(u.user_principal_name.clone()))
            })
            .collect()
    });
    let (user, upn) = (members[0].0.clone(), members[0].1.clone());
    // Two administrators who ask and approve from the command line, and someone without a role.
    let (ada, bob, cy) = (members[1].1.clone(), members[2].1.clone(), members[3].1.clone());
    for who in [&ada, &bob] {
        assert!(run(config.clone(), vec!["admin", "set-roles", "--user", who, "--roles", "admin"]).await.success);
    }

    // `--as` is a known person who may make changes, or the command refuses.
    let nobody = run(config.clone(), vec!["action", "block", "--user", &upn, "--as", "nobody@nowhere.example"]).await;
    assert!(!nobody.success && nobody.error.as_deref().unwrap().contains("--as nobody@nowhere.example: nobody"));
    let plain = run(config.clone(), vec!["action", "block", "--user", &upn, "--as", &cy]).await;
    assert!(!plain.success && plain.error.as_deref().unwrap().contains("neither an administrator nor an owner"));

    // Blocking is a user action, sensitive by default: it waits for a second person.
    let asked = run(config.clone(), vec!["action", "block", "--user", &upn, "--as", &ada]).await;
    assert!(asked.success, "{:?}", asked.error);
    assert!(
        asked.stdout.contains("awaiting_approval") && asked.stdout.contains("attest change approve"),
        "{}",
        asked.stdout
    );
    let id = asked.stdout.split_whitespace().next().unwrap().trim_start_matches('#').to_owned();
    assert!(sim.sim.read(|t| t.live_user(&user).unwrap().account_enabled), "nothing happened yet");
    let shouted = ada.to_uppercase();
    let own = run(config.clone(), vec!["change", "approve", &id, "--as", &shouted]).await;
    assert!(
        !own.success && own.error.as_deref().unwrap().contains("a second person must approve it"),
        "{:?}",
        own.error
    );
    for refused in ["nobody@nowhere.example", cy.as_str()] {
        let out = run(config.clone(), vec!["change", "approve", &id, "--as", refused]).await;
        assert!(!out.success, "{refused} may not approve");
    }
    let approved = run(config.clone(), vec!["change", "approve", &id, "--as", &bob]).await;
    assert!(approved.success, "{:?}\n{}", approved.error, approved.stdout);
    assert!(approved.stdout.contains(" applied ") && !approved.stdout.contains("(applied)"), "{}", approved.stdout);
    assert!(!sim.sim.read(|t| t.live_user(&user).unwrap().account_enabled), "blocked in Entra");
    let shown = run(config.clone(), vec!["change", "show", &id]).await;
    assert!(
        shown.stdout.contains(&format!("approved by    {} (command line)", members[2].2))
            && shown.stdout.contains("read back      holds"),
        "{}",
        shown.stdout
    );

    // A second person may deny instead, saying why; the requester's reason and the denial show.
    let asked =
        run(config.clone(), vec!["action", "delete", "--user", &upn, "--as", &ada, "--reason", "left the company"])
            .await;
    assert!(asked.success, "{:?}", asked.error);
    let delete = asked.stdout.split_whitespace().next().unwrap().trim_start_matches('#').to_owned();
    let own = run(config.clone(), vec!["change", "deny", &delete, "--as", &ada, "--reason", "oops"]).await;
    assert!(!own.success && own.error.as_deref().unwrap().contains("cancel instead"), "{:?}", own.error);
    let denied = run(config.clone(), vec!["change", "deny", &delete, "--as", &bob, "--reason", "legal hold"]).await;
    assert!(denied.success && denied.stdout.contains(" denied "), "{:?}\n{}", denied.error, denied.stdout);
    let shown = run(config.clone(), vec!["change", "show", &delete]).await;
    assert!(
        shown.stdout.contains("reason         left the company")
            && shown.stdout.contains(&format!("denied by      {} (command line): legal hold", members[2].2)),
        "{}",
        shown.stdout
    );
    assert!(sim.sim.read(|t| t.live_user(&user).is_some()), "not deleted");

    // With no sensitive classes configured, an action applies at once; a password is shown once.
    let open_config = dir.join("open.toml");
    std::fs::write(
        &open_config,
        format!("[secrets]\nkey_file = \"{}\"\n[provisioning]\nsensitive = []\n", dir.join("secret.key").display()),
    )
    .unwrap();
    let open = open_config.display().to_string();
    let reset = run(open.clone(), vec!["action", "reset-password", "--user", &user]).await;
    assert!(reset.success, "{:?}\n{}", reset.error, reset.stdout);
    let password = reset.stdout.lines().find_map(|l| l.split("next sign-in): ").nth(1)).unwrap().trim().to_owned();
    assert!(password.len() >= 12);
    assert!(sim.sim.read(|t| t.live_user(&user).unwrap().force_change_password_next_sign_in));
    if let Some(path) = db.url.sqlite_path() {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "the password is stored nowhere");
    }
    let again = run(open.clone(), vec!["action", "unblock", "--user", &upn]).await;
    // Applied says so once; how it ended is added only when it says more.
    assert!(again.success && again.stdout.contains("  applied  "), "{}", again.stdout);
    let noop = run(open.clone(), vec!["action", "unblock", "--user", &upn]).await;
    assert!(noop.success && noop.stdout.contains("applied (already_in_state)"), "{}", noop.stdout);

    // A refusal fails with what to do; cancel refuses what is done; list shows everything.
    let unknown = run(open.clone(), vec!["action", "block", "--user", "nobody@nowhere.example"]).await;
    assert!(!unknown.success && unknown.error.as_deref().unwrap().contains("no user 'nobody@nowhere.example'"));
    let cancel = run(config.clone(), vec!["change", "cancel", &id]).await;
    assert!(!cancel.success && cancel.error.as_deref().unwrap().contains("already applied"), "{:?}", cancel.error);
    let pending = run(config.clone(), vec!["action", "delete", "--user", &upn]).await;
    let pending_id = pending.stdout.split_whitespace().next().unwrap().trim_start_matches('#').to_owned();
    let cancelled = run(config.clone(), vec!["change", "cancel", &pending_id]).await;
    assert!(cancelled.success && cancelled.stdout.contains("cancelled"), "{}", cancelled.stdout);
    let list = run(config.clone(), vec!["change", "list", "--json"]).await;
    let changes: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(changes.as_array().unwrap().len(), 6);
    assert!(!list.stdout.contains(&password));
    // Described with names, in the JSON and in aligned columns.
    let name = sim.sim.read(|t| t.live_user(&user).unwrap().display_name.clone());
    assert!(
        changes.as_array().unwrap().iter().any(|c| c["description"].as_str().unwrap().contains(&name)),
        "{changes}"
    );
    let list = run(config.clone(), vec!["change", "list"]).await;
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("ID ") && lines[0].contains("STATE") && lines.len() == 7, "{}", list.stdout);
    let column = lines[0].find("CHANGE").unwrap();
    assert!(lines[1..].iter().all(|l| l.chars().nth(column - 1) == Some(' ')), "aligned: {}", list.stdout);
    assert!(list.stdout.contains(&name), "{}", list.stdout);
    let _ = std::fs::remove_dir_all(&dir);
});

db_test!(bench_provision_applies_every_change, true, |db| {
    let outcome = crate::harness::attest_on(
        &db,
        &["bench", "provision", "--changes", "60", "--users", "300", "--groups", "30", "--latency-ms", "0"],
    )
    .await;
    assert!(outcome.success, "{:?}\n{}", outcome.error, outcome.stdout);
    assert!(outcome.stdout.contains("states: applied 60"), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("early requests (inside a Retry-After window): 0"), "{}", outcome.stdout);
});
