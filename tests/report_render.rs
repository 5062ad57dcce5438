//! `infab report` end to end: the real binary renders the fixture results
//! (tests/fixtures/results/, from a SoftRoCE run) into a folder, then Debian's
//! headless Chromium loads report.html to check that the charts and tables
//! are really there once a browser has parsed the page, and takes a
//! screenshot (kept at target/report-screenshot.png for people to look at).
//!
//! Without Chromium the browser test fails with the install command, unless
//! INFAB_SKIP_BROWSER=1 says to skip it (it then prints that it skipped).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FIXTURES: [&str; 3] = ["bw-write.json", "lat-write-imm.json", "dead-peer.json"];
/// Inline SVG charts the fixtures make: 5.1 throughput twice (bw-write,
/// dead-peer), 5.2 one per clock (initiator, pingpong, target).
const CHARTS: usize = 5;
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/results")
        .join(name)
}

fn infab(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infab"))
        .args(args)
        .output()
        .expect("run the infab binary")
}

/// Renders the fixtures into `out`; returns the paths infab printed.
fn render(out: &Path) -> Vec<PathBuf> {
    let mut args: Vec<std::ffi::OsString> = vec!["report".into()];
    args.extend(FIXTURES.iter().map(|f| fixture(f).into_os_string()));
    args.extend(["-o".into(), out.as_os_str().to_owned()]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let output = infab(&refs);
    assert!(
        output.status.success(),
        "infab report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

#[test]
fn report_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let written = render(dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "report.md",
        "report.html",
        "kpis.csv",
        "trials.csv",
        "bw-write-throughput.svg",
        "lat-write-imm-latency-initiator.svg",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.ends_with(".svg")).count(), CHARTS);
    for path in &written {
        assert!(
            path.metadata().unwrap().len() > 0,
            "{} is empty",
            path.display()
        );
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("![Throughput vs message size](bw-write-throughput.svg)"));
    assert!(md.contains("## Test 5.2: KV Cache Transfer Latency"));
    assert!(
        md.contains("no completion for 5.0 s"),
        "the partial run's error is shown"
    );

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for banned in ["http://", "https://", "<script", " src=", "<link"] {
        assert!(
            !html.contains(banned),
            "report.html is not self-contained: {banned}"
        );
    }
}

#[test]
fn a_corrupt_file_fails_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("cut.json");
    let text = std::fs::read_to_string(fixture("bw-write.json")).unwrap();
    std::fs::write(&bad, &text[..200]).unwrap();
    let out = dir.path().join("out");
    let output = infab(&[
        "report".as_ref(),
        bad.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:", bad.display())) && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    assert!(
        !out.join("report.html").exists(),
        "nothing is written on error"
    );
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("INFAB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium with `args` then `url`, stdout into `stdout_file`;
/// kills it after [`CHROMIUM_TIMEOUT`].
fn run_chromium(browser: &Path, profile: &Path, args: &[&str], url: &str, stdout_file: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(stdout_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} exited with {status}");
            return;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in {CHROMIUM_TIMEOUT:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chromium_renders_the_charts_and_tables() {
    let Some(browser) = chromium() else {
        if std::env::var("INFAB_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: no chromium (INFAB_SKIP_BROWSER=1)");
            return;
        }
        panic!("headless Chromium is needed to check report.html: apt-get install chromium (or set INFAB_SKIP_BROWSER=1 to skip this test)");
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    render(&out);
    let url = format!("file://{}", out.join("report.html").display());

    let dom_file = dir.path().join("dom.html");
    run_chromium(
        &browser,
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
        &url,
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("<h1>infab report</h1>"),
        "no report in the DOM: {}",
        &dom[..dom.len().min(500)]
    );
    assert_eq!(
        dom.matches("<svg").count(),
        CHARTS,
        "inline SVG charts in the DOM"
    );
    assert!(dom.matches("<figure").count() == CHARTS);
    // Per file: run, parameters, endpoints, KPI summary (+ deviations when any);
    // 5.2 adds the percentile table.
    let tables = dom.matches("<table").count();
    assert!(
        tables >= 13,
        "{tables} tables in the DOM, expected 4 per file + 1"
    );
    for text in [
        "Test 5.1: throughput vs message size",
        "line rate 10 Gb/s = 1.250 GB/s",
        "Test 5.2: latency percentile points (target clock)",
        "not a full CDF",
        "Latency percentiles per message size and clock",
        "KPI summary (per configuration)",
        "Endpoints",
    ] {
        assert!(dom.contains(text), "'{text}' not in the DOM");
    }

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &browser,
        &dir.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
        ],
        &url,
        &dir.path().join("shot.log"),
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 50_000,
        "screenshot only {} bytes: a blank page?",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
