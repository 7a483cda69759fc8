//! A real Chromium for tests, driven over WebDriver: this module owns finding Debian's
//! `chromium` and `chromedriver`, starting one chromedriver per test (its own port, its
//! own throwaway profile), connecting a [`fantoccini`] client over rustls, the bounded
//! polling waits tests use instead of sleeps, the screenshots each test keeps, and
//! killing every process it started when the test ends.
//!
//! Where Chromium or chromedriver is missing, [`BrowserOptions::start`] returns `None`
//! after [`crate::skip`] has said so (or failed the test under `.ci/run`).
//!
//! ```no_run
//! # async fn example() {
//! use testkit::browser::{Browser, Key};
//! let Some(browser) = Browser::start("console_signs_in").await else { return };
//! browser.goto("http://127.0.0.1:8080/console/").await;
//! browser.fill("#user", "alice").await;
//! browser.press(Key::Enter).await;
//! browser.wait_for_text("h1", "Inbox").await;
//! browser.screenshot("inbox").await;
//! browser.close().await;
//! # }
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub use fantoccini;
pub use fantoccini::Locator;
pub use fantoccini::cookies::Cookie;
pub use fantoccini::key::Key;

/// How long any one wait (chromedriver starting, an element appearing, a page loading)
/// may take before the test fails: generous, because the machine may be busy; a wait
/// that succeeds returns as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The flags Chromium needs here: headless, as root (no sandbox), no GPU, and none of
/// the background connections a closed network refuses.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--password-store=basic",
];

/// How a [`Browser`] starts: its window size and language.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    width: u32,
    height: u32,
    lang: String,
}

impl Default for BrowserOptions {
    /// A 1280×900 window speaking `zh-CN`, the console's first language.
    fn default() -> Self {
        Self {
            width: 1280,
            height: 900,
            lang: "zh-CN".to_owned(),
        }
    }
}

impl BrowserOptions {
    /// The defaults: a 1280×900 window, `zh-CN`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The window's size in CSS pixels.
    #[must_use]
    pub fn window(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// A tablet held upright: 768×1024.
    #[must_use]
    pub fn tablet(self) -> Self {
        self.window(768, 1024)
    }

    /// The browser's language, a BCP 47 tag such as `zh-CN` or `en`: its interface
    /// language, `navigator.language` and the `Accept-Language` it sends (`zh-CN`
    /// sends `zh-CN,zh;q=0.9`).
    #[must_use]
    pub fn lang(mut self, lang: &str) -> Self {
        lang.clone_into(&mut self.lang);
        self
    }

    /// Starts chromedriver and a Chromium session for `test` (its name, for messages
    /// and file names). `None` when Chromium or chromedriver is not installed, after
    /// [`crate::skip`] has said so; panics when they are installed but do not start.
    pub async fn start(self, test: &str) -> Option<Browser> {
        let chromium = find_tool(&["chromium", "chromium-browser"]);
        let driver = find_tool(&["chromedriver"]);
        let (chromium, driver) = match (chromium, driver) {
            (Some(chromium), Some(driver)) => (chromium, driver),
            (chromium, driver) => {
                let missing: Vec<&str> = [
                    chromium.is_none().then_some("chromium"),
                    driver.is_none().then_some("chromedriver"),
                ]
                .into_iter()
                .flatten()
                .collect();
                crate::skip(
                    test,
                    &format!(
                        "{} not found on PATH or in /usr/bin (Debian: apt-get install chromium chromium-driver)",
                        missing.join(" and ")
                    ),
                    true,
                );
                return None;
            }
        };
        Some(Browser::launch(test, &self, &chromium, &driver).await)
    }
}

/// One headless Chromium behind its own chromedriver, for one test. Every helper
/// panics with the test's name and what it waited for when the page does not do what
/// the test expects; waits poll for at most [`WAIT`].
///
/// Screenshots go to [`Browser::artifacts`], a temporary directory removed when the
/// browser is dropped, unless the test is failing: then it is kept, and its path is
/// printed, with chromedriver's log beside the screenshots.
pub struct Browser {
    test: String,
    client: Option<Client>,
    driver: Child,
    driver_pid: Option<rustix::process::Pid>,
    dir: Option<tempfile::TempDir>,
    artifacts: PathBuf,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("test", &self.test)
            .field("driver_pid", &self.driver_pid)
            .field("artifacts", &self.artifacts)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// [`BrowserOptions::default`]: a 1280×900 window speaking `zh-CN`.
    pub async fn start(test: &str) -> Option<Self> {
        BrowserOptions::default().start(test).await
    }

    /// Options for a browser of another size or language.
    pub fn options() -> BrowserOptions {
        BrowserOptions::default()
    }

    async fn launch(test: &str, options: &BrowserOptions, chromium: &Path, driver: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("browser-{}-", file_name(test)))
            .tempdir()
            .expect("a temporary directory for the browser");
        let artifacts = dir.path().to_path_buf();
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("the browser's profile directory");
        let log_path = dir.path().join("chromedriver.log");
        std::fs::File::create(&log_path).expect("chromedriver's log file");

        let (driver, port) = spawn_driver(test, driver, &options.lang, &log_path).await;
        let driver_pid = driver
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        let mut browser = Self {
            test: test.to_owned(),
            client: None,
            driver,
            driver_pid,
            dir: Some(dir),
            artifacts,
        };
        browser.await_driver_ready(port, &log_path).await;

        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            chrome_options(options, chromium, &profile),
        );
        let client = ClientBuilder::rustls()
            .expect("a rustls HTTP connector")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{test}: chromedriver did not start Chromium: {e}\n{}",
                    log_tail(&log_path)
                )
            });
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot set the session's timeouts: {e}"));
        browser.client = Some(client);
        browser
    }

    /// Polls chromedriver's `/status` until it says it is ready for a session.
    async fn await_driver_ready(&mut self, port: u16, log_path: &Path) {
        let deadline = Instant::now() + WAIT;
        loop {
            if driver_ready(port).await {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!(
                    "{}: chromedriver exited ({status}) before it was ready\n{}",
                    self.test,
                    log_tail(log_path)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: chromedriver on port {port} was not ready within {WAIT:?}\n{}",
                    self.test,
                    log_tail(log_path)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The fantoccini client, for anything the helpers here do not cover.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a browser's client is there until close() takes it")
    }

    /// Where [`Browser::screenshot`] and [`Browser::print_to_pdf`] write.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// Opens `url` and returns once the page has loaded.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client().goto(url).await {
            return self
                .fail(&format!("cannot open {}: {e}", without_query(url)))
                .await;
        }
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        match self.client().current_url().await {
            Ok(url) => url.into(),
            Err(e) => {
                self.fail(&format!("cannot read the current URL: {e}"))
                    .await
            }
        }
    }

    /// The page's path now, without query or fragment.
    pub async fn path(&self) -> String {
        match self.client().current_url().await {
            Ok(url) => url.path().to_owned(),
            Err(e) => {
                self.fail(&format!("cannot read the current URL: {e}"))
                    .await
            }
        }
    }

    /// The page's source now (the DOM serialised, not the bytes the server sent).
    pub async fn source(&self) -> String {
        match self.client().source().await {
            Ok(source) => source,
            Err(e) => {
                self.fail(&format!("cannot read the page source: {e}"))
                    .await
            }
        }
    }

    /// The page's `<title>`.
    pub async fn title(&self) -> String {
        match self.client().title().await {
            Ok(title) => title,
            Err(e) => self.fail(&format!("cannot read the title: {e}")).await,
        }
    }

    /// Runs `script` in the page (a function body: `return document.title`) and
    /// returns what it returned.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client().execute(script, args).await {
            Ok(value) => value,
            Err(e) => self.fail(&format!("script failed: {e}")).await,
        }
    }

    /// The cookies the browser holds for the current page.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        match self.client().get_all_cookies().await {
            Ok(cookies) => cookies,
            Err(e) => self.fail(&format!("cannot read the cookies: {e}")).await,
        }
    }

    /// The first element matching `css` now, without waiting; `None` if there is none.
    pub async fn find(&self, css: &str) -> Option<Element> {
        match self.client().find(Locator::Css(css)).await {
            Ok(element) => Some(element),
            Err(e) if is_no_such_element(&e) => None,
            Err(e) => self.fail(&format!("cannot look for `{css}`: {e}")).await,
        }
    }

    /// Every element matching `css` now, without waiting.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        match self.client().find_all(Locator::Css(css)).await {
            Ok(elements) => elements,
            Err(e) => self.fail(&format!("cannot look for `{css}`: {e}")).await,
        }
    }

    /// Waits (polling, at most [`WAIT`]) until an element matches `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        let waited = self
            .client()
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        match waited {
            Ok(element) => element,
            Err(CmdError::WaitTimeout) => {
                self.fail(&format!("nothing matched `{css}` within {WAIT:?}"))
                    .await
            }
            Err(e) => self.fail(&format!("waiting for `{css}`: {e}")).await,
        }
    }

    /// Waits until no element matches `css` (a dialog closed, a message went away).
    pub async fn wait_for_absent(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        while self.find(css).await.is_some() {
            if Instant::now() >= deadline {
                return self
                    .fail(&format!("`{css}` was still there after {WAIT:?}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matches `css` and its text contains `needle`; returns
    /// the whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Some(element) = self.find(css).await {
                // The element may be replaced between finding and reading it.
                match element.text().await {
                    Ok(text) if text.contains(needle) => return text,
                    Ok(text) => last = Some(text),
                    Err(e) if is_stale(&e) => {}
                    Err(e) => self.fail(&format!("cannot read `{css}`: {e}")).await,
                }
            }
            if Instant::now() >= deadline {
                let seen = match last {
                    Some(text) => format!("its text was {text:?}"),
                    None => "nothing matched".to_owned(),
                };
                return self
                    .fail(&format!(
                        "`{css}` did not come to contain {needle:?} within {WAIT:?}: {seen}"
                    ))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page's path (without query or fragment) is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            if Instant::now() >= deadline {
                return self
                    .fail(&format!(
                        "the page's path did not become {path} within {WAIT:?}: it is {now}"
                    ))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page's whole address contains `needle` (a submitted GET
    /// form has navigated, not merely been clicked).
    pub async fn wait_for_url_containing(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.url().await;
            if now.contains(needle) {
                return;
            }
            if Instant::now() >= deadline {
                return self
                    .fail(&format!(
                        "the address did not come to contain {needle:?} within {WAIT:?}: it is {now}"
                    ))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `css`, clears it and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.clear().await {
            return self.fail(&format!("cannot clear `{css}`: {e}")).await;
        }
        if let Err(e) = element.send_keys(text).await {
            return self.fail(&format!("cannot type into `{css}`: {e}")).await;
        }
    }

    /// Waits for `css` and clicks it.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.click().await {
            return self.fail(&format!("cannot click `{css}`: {e}")).await;
        }
    }

    /// Waits for `css` and returns its visible text.
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        match element.text().await {
            Ok(text) => text,
            Err(e) => self.fail(&format!("cannot read `{css}`: {e}")).await,
        }
    }

    /// Waits for `css` and returns its attribute `name` (`None` when it has none).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.wait_for(css).await;
        match element.attr(name).await {
            Ok(value) => value,
            Err(e) => {
                self.fail(&format!("cannot read `{css}`'s {name}: {e}"))
                    .await
            }
        }
    }

    /// Presses `key` in whatever has the focus (the page's body if nothing does).
    pub async fn press(&self, key: Key) {
        self.type_keys(&char::from(key).to_string()).await;
    }

    /// Types `text` into whatever has the focus.
    pub async fn type_keys(&self, text: &str) {
        let focused = match self.client().active_element().await {
            Ok(element) => element,
            Err(e) => self.fail(&format!("nothing has the focus: {e}")).await,
        };
        if let Err(e) = focused.send_keys(text).await {
            return self
                .fail(&format!("cannot type into the focused element: {e}"))
                .await;
        }
    }

    /// The focused element's `id`, `name` or tag, for checking keyboard order.
    pub async fn focused(&self) -> String {
        let described = self
            .execute(
                "const e = document.activeElement;\
                 return e ? (e.id ? '#' + e.id : (e.name ? '[name=' + e.name + ']' : e.tagName.toLowerCase())) : '';",
                vec![],
            )
            .await;
        described.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the window as `<name>.png` in [`Browser::artifacts`] and returns
    /// its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.artifacts.join(format!("{}.png", file_name(name)));
        self.save_screenshot_to(&path).await;
        path
    }

    /// Saves a PNG of the window at `path` (for instance the README's screenshots),
    /// creating its directory.
    pub async fn save_screenshot_to(&self, path: &Path) {
        let png = match self.client().screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("{}: cannot take a screenshot: {e}", self.test),
        };
        write_file(&self.test, path, &png);
    }

    /// Prints the page to PDF as `<name>.pdf` in [`Browser::artifacts`] and returns its
    /// path.
    pub async fn print_to_pdf(&self, name: &str) -> PathBuf {
        let path = self.artifacts.join(format!("{}.pdf", file_name(name)));
        let pdf = match self
            .client()
            .print(fantoccini::wd::PrintConfiguration::default())
            .await
        {
            Ok(pdf) => pdf,
            Err(e) => self.fail(&format!("cannot print to PDF: {e}")).await,
        };
        write_file(&self.test, &path, &pdf);
        path
    }

    /// Ends the session (Chromium quits), then stops chromedriver and anything left
    /// in its process group. Dropping the browser also stops them, less politely.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            // The session may already be gone; the processes are killed below anyway.
            let _ = client.close().await;
        }
        self.kill();
        let _ = self.driver.wait().await;
    }

    /// Fails the test: a screenshot of what the page looked like, then a panic naming
    /// the test, the page's path and `what`.
    async fn fail<T>(&self, what: &str) -> T {
        let path = match self.client().current_url().await {
            Ok(url) => url.path().to_owned(),
            Err(_) => "(unknown)".to_owned(),
        };
        let shot = self.artifacts.join("failure.png");
        let saved = match self.client().screenshot().await {
            Ok(png) => std::fs::write(&shot, png).is_ok(),
            Err(_) => false,
        };
        if saved {
            panic!(
                "{}: on {path}: {what} (screenshot: {})",
                self.test,
                shot.display()
            );
        }
        panic!("{}: on {path}: {what}", self.test);
    }

    /// Kills chromedriver's whole process group: chromedriver, Chromium and Chromium's
    /// helper processes.
    fn kill(&mut self) {
        if let Some(pid) = self.driver_pid.take() {
            // Already gone is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.start_kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let _ = std::fs::remove_dir_all(dir.path().join("profile"));
            let kept = dir.keep();
            #[expect(
                clippy::print_stderr,
                reason = "a failing browser test says where its screenshots are"
            )]
            {
                eprintln!(
                    "{}: screenshots and chromedriver.log kept in {}",
                    self.test,
                    kept.display()
                );
            }
        }
    }
}

/// Starts chromedriver and returns it with the port it listens on. Port 0:
/// chromedriver binds a free port itself and says which, so two tests never race for
/// one; should it still stop before saying (it also binds the IPv6 loopback on that
/// port, which something else may hold), it is started again, up to three times. Its
/// own process group, so that Chromium and every helper process Chromium starts can
/// be killed together.
async fn spawn_driver(test: &str, driver: &Path, lang: &str, log_path: &Path) -> (Child, u16) {
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(log_path)
            .expect("chromedriver's log file");
        let mut child = Command::new(driver)
            .arg("--port=0")
            .env("LANGUAGE", lang.replace('-', "_"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: cannot start {}: {e}", driver.display()));
        let stdout = child.stdout.take().expect("chromedriver's piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let said = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                append_line(log_path, &line).await;
                if let Some(port) = started_on(&line) {
                    return Some(port);
                }
            }
            None
        })
        .await;
        match said {
            Ok(Some(port)) => {
                // Keep reading, so that chromedriver never blocks on a full pipe.
                let log_path = log_path.to_path_buf();
                tokio::spawn(async move {
                    while let Ok(Some(line)) = lines.next_line().await {
                        append_line(&log_path, &line).await;
                    }
                });
                return (child, port);
            }
            Ok(None) => {
                let _ = child.wait().await;
            }
            Err(_) => panic!(
                "{test}: chromedriver did not say which port it listens on within {WAIT:?}\n{}",
                log_tail(log_path)
            ),
        }
    }
    panic!(
        "{test}: chromedriver stopped {ATTEMPTS} times without saying which port it listens on\n{}",
        log_tail(log_path)
    )
}

/// The port in chromedriver's `ChromeDriver was started successfully on port 4711.`
fn started_on(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("started successfully on port ")?;
    rest.trim().trim_end_matches('.').parse().ok()
}

/// Appends `line` to chromedriver's log; a log that cannot be written loses the line.
async fn append_line(log_path: &Path, line: &str) {
    if let Ok(mut log) = tokio::fs::OpenOptions::new()
        .append(true)
        .open(log_path)
        .await
    {
        let _ = log.write_all(format!("{line}\n").as_bytes()).await;
    }
}

/// `goog:chromeOptions` for `options`, with Chromium at `binary` and its profile in
/// `profile`.
fn chrome_options(options: &BrowserOptions, binary: &Path, profile: &Path) -> Value {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!(
        "--window-size={},{}",
        options.width, options.height
    ));
    args.push(format!("--lang={}", options.lang));
    json!({
        "binary": binary,
        "args": args,
        "prefs": { "intl.accept_languages": accept_languages(&options.lang) },
    })
}

/// `zh-CN` → `zh-CN,zh`; `en` → `en`.
fn accept_languages(lang: &str) -> String {
    match lang.split_once('-') {
        Some((base, _)) => format!("{lang},{base}"),
        None => lang.to_owned(),
    }
}

/// The first of `names` found as an executable on `PATH` or in `/usr/bin`.
fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(std::iter::once(PathBuf::from("/usr/bin")))
        .collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(OsStr::new(name)))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether chromedriver on `port` answers `/status` with `ready: true`. It keeps the
/// connection open whatever the request says, so the body is read by its
/// `Content-Length`; one attempt takes at most a second.
async fn driver_ready(port: u16) -> bool {
    tokio::time::timeout(Duration::from_secs(1), driver_status(port))
        .await
        .ok()
        .flatten()
        .is_some_and(|status| status["value"]["ready"] == Value::Bool(true))
}

async fn driver_status(port: u16) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })?;
        if body.len() >= length {
            return serde_json::from_str(body).ok();
        }
    }
}

fn is_no_such_element(e: &CmdError) -> bool {
    matches!(e, CmdError::Standard(w) if w.error == ErrorStatus::NoSuchElement)
}

fn is_stale(e: &CmdError) -> bool {
    matches!(e, CmdError::Standard(w) if w.error == ErrorStatus::StaleElementReference)
}

/// `name` with anything but ASCII letters, digits, `-` and `_` replaced by `-`.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `url` without its query and fragment, for messages.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn write_file(test: &str, path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("{test}: cannot create {}: {e}", parent.display()));
    }
    std::fs::write(path, bytes)
        .unwrap_or_else(|e| panic!("{test}: cannot write {}: {e}", path.display()));
}

/// The last lines of chromedriver's log, for a failure message.
fn log_tail(log_path: &Path) -> String {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("chromedriver's log ({}):\n{tail}", log_path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_is_nowhere_is_not_found() {
        assert_eq!(find_tool(&["no-such-tool-for-gateway-tests"]), None);
        assert!(find_tool(&["no-such-tool-for-gateway-tests", "sh"]).is_some());
    }

    #[test]
    fn a_regional_language_also_accepts_its_base() {
        assert_eq!(accept_languages("zh-CN"), "zh-CN,zh");
        assert_eq!(accept_languages("en"), "en");
    }

    #[test]
    fn chromedriver_says_its_port() {
        assert_eq!(
            started_on("ChromeDriver was started successfully on port 40123."),
            Some(40123)
        );
        assert_eq!(started_on("Only local connections are allowed."), None);
    }

    #[test]
    fn names_become_plain_file_names() {
        assert_eq!(file_name("console::signs in/out"), "console--signs-in-out");
        assert_eq!(without_query("http://h/p?token=x#f"), "http://h/p");
    }
}
