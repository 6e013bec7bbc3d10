//! Running `attest` commands in-process and capturing what they print.

use std::process::ExitCode;

/// What a command did: whether it succeeded, what it printed, and its error (one line, as the
/// binary prints it) when it failed.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub error: Option<String>,
}

/// Every log line this test binary wrote, kept to check that no secret is ever logged.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Writes log lines to [`LOGS`] and to stderr.
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the process's log subscriber, once, before anything else can: production's default
/// filter, with Attest's own crates at debug to be strict.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,sqlx=warn,attest_server=debug,attest_store=debug,attest_entra=debug,attest_provisioner=debug,attest_notify=debug,attest_connector=debug,attest_cli=debug",
        );
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| Capture).try_init();
    });
}

/// Everything logged so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// Runs `attest ARGS...`.
pub async fn attest(args: &[&str]) -> Outcome {
    capture_logs();
    let mut out = Vec::new();
    let argv = std::iter::once("attest").chain(args.iter().copied());
    // Boxed: the command line's future is large, and a test thread's stack is not.
    let result = Box::pin(attest_cli::run_with(argv, &mut out)).await;
    let stdout = String::from_utf8(out).unwrap();
    match result {
        Ok(code) => Outcome { success: code == ExitCode::SUCCESS, stdout, error: None },
        Err(e) => Outcome { success: false, stdout, error: Some(format!("{e:#}").replace('\n', " ")) },
    }
}

/// Runs `attest --database-url URL ARGS...`.
pub async fn attest_on(url: &attest_store::testing::TestDb, args: &[&str]) -> Outcome {
    let url = url.url.expose().to_owned();
    let mut full = vec!["--database-url", url.as_str()];
    full.extend_from_slice(args);
    attest(&full).await
}

/// Runs raw SQL (to play an attacker tampering with the database).
pub async fn raw_sql(db: &attest_store::testing::TestDb, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(db.url.expose()).await.unwrap();
    conn.execute_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql.to_owned())).await.unwrap();
    conn.close().await.unwrap();
}

/// Text as the templates escape it in HTML (`/` too, as `&#x2f;`).
pub fn escape(text: &str) -> String {
    ESCAPES.iter().fold(text.replace('&', "&amp;"), |text, (plain, escaped)| text.replace(*plain, escaped))
}

/// Undoes [`escape`].
pub fn unescape(html: &str) -> String {
    ESCAPES.iter().fold(html.to_owned(), |html, (plain, escaped)| html.replace(escaped, plain)).replace("&amp;", "&")
}

/// What the templates escape besides `&` (which goes first on the way in, last on the way out).
const ESCAPES: [(&str, &str); 5] = [("<", "&lt;"), (">", "&gt;"), ("\"", "&quot;"), ("'", "&#x27;"), ("/", "&#x2f;")];

/// A browser that shows redirects instead of following them.
pub fn browser() -> reqwest::Client {
    attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A redirect's target.
pub fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// What a person does to sign in: `/auth/sign-in` on Attest at `base`, then the simulator's
/// sign-in page, picking `upn`. Returns the authorize URL Attest sent the browser to, the
/// callback URL the simulator sends it back to (not yet visited), and the cookie binding the
/// sign-in to this browser (the callback needs it back).
pub async fn sign_in_through_simulator(base: &str, upn: &str) -> (String, String, String) {
    let (authorize, callback, _, binding) = sign_in_starting_at(base, "/auth/sign-in", upn).await;
    (authorize, callback, binding)
}

/// The same, starting at `start` (e.g. `/auth/sign-in?next=…`); also returns the cookie
/// Attest set to remember where to come back to, if it set one.
pub async fn sign_in_starting_at(base: &str, start: &str, upn: &str) -> (String, String, Option<String>, String) {
    let start = browser().get(format!("{base}{start}")).send().await.unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let set = set_cookies(&start);
    let remembered = set.iter().find(|c| c.starts_with("attest_return=")).cloned();
    let binding = set.iter().find(|c| c.starts_with("attest_sign_in=")).cloned().expect("the sign-in is bound");
    let authorize = location(&start);
    let callback = at_simulator(&authorize, upn).await;
    (authorize, callback, remembered, binding)
}

/// `upn` signs in on the simulator's page an authorization request (`authorize`, a URL)
/// leads to: the callback Microsoft sends the browser back to.
pub async fn at_simulator(authorize: &str, upn: &str) -> String {
    let (endpoint, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    form.push(("login".into(), upn.to_owned()));
    let signed = browser().post(endpoint).form(&form).send().await.unwrap();
    location(&signed)
}

/// The cookies a response sets, as `name=value`.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}
