//! Checks against the real thing: PHP's own `serialize()` and `unserialize()`.
//!
//! Needs the `php` command (Debian: `apt-get install php-cli`); every test here says so and
//! passes without checking anything when it is missing.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use php_serial::{UrlRewrite, Value, parse};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

#[path = "../src/testgen.rs"]
mod testgen;

const FROM: &str = "http://127.0.0.1:8081";
const TO: &str = "http://staging.127.0.0.1.nip.io:18082/sub";

/// The `php` command, or `None` (said loudly) when it is not installed.
fn php(test: &str) -> Option<Command> {
    let found = Command::new("php")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: php is not installed (apt-get install php-cli)"
        );
        return None;
    }
    let mut cmd = Command::new("php");
    // `Serializable` is deprecated since PHP 8.1; its notice is not the subject here.
    cmd.args(["-d", "display_errors=stderr", "-d", "error_reporting=24575"]);
    Some(cmd)
}

fn script(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "php", name]
        .iter()
        .collect()
}

/// Runs a PHP script with `input` on stdin and returns its stdout lines.
fn run(mut cmd: Command, name: &str, args: &[&str], input: &str) -> Vec<String> {
    let mut child = cmd
        .arg(script(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("php runs");
    writer.join().unwrap().expect("php reads its input");
    assert!(
        out.status.success(),
        "php {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("php prints text")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_all_ok(verdicts: &[String], expected: usize) {
    let failures: Vec<_> = verdicts.iter().filter(|v| *v != "ok").collect();
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(verdicts.len(), expected, "one verdict per case");
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fn unb64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk
            .iter()
            .copied()
            .filter(|&c| c != b'=')
            .map(value)
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend((0..digits.len().saturating_sub(1)).map(|i| (n >> (16 - 8 * i)) as u8));
    }
    out
}

/// A from => to map, as `oracle.php` reads it.
fn php_map(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let entries = pairs
        .into_iter()
        .map(|(from, to)| (Value::string(from), Value::string(to)))
        .collect();
    Value::Array(entries).to_bytes()
}

#[test]
fn wordpress_options_moved_here_are_what_php_builds_for_the_new_url() {
    for (from, to) in [
        (FROM, TO),
        ("https://www.example-shop.com/store", "http://s.io"),
    ] {
        let Some(cmd) = php("wordpress_options_moved_here_are_what_php_builds_for_the_new_url")
        else {
            return;
        };
        let rw = UrlRewrite::new(from, to).unwrap();
        let cases = run(cmd, "wordpress.php", &["emit", from, to], "");
        assert!(cases.len() >= 15, "{cases:?}");
        let mut rewritten = String::new();
        for case in &cases {
            let [name, before, want] = case.split(' ').collect::<Vec<_>>()[..] else {
                panic!("bad line {case}");
            };
            let (before, want) = (unb64(before), unb64(want));
            let got = rw.apply(&before).unwrap_or_else(|| before.clone());
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{name}: not what PHP serializes for {to}"
            );
            if name == "wp_user_roles" {
                assert_eq!(rw.apply(&before), None, "no URL, no change");
            }
            rewritten.push_str(&format!("{name} {}\n", b64(&got)));
        }
        let verdicts = run(
            php("").unwrap(),
            "wordpress.php",
            &["check", to],
            &rewritten,
        );
        assert_all_ok(&verdicts, cases.len());
    }
}

#[test]
fn php_generated_values_round_trip_byte_for_byte_and_move_as_php_expects() {
    const CASES: usize = 200;
    for (seed, (from, to)) in [
        (FROM, TO),
        ("https://www.example-shop.com/store", "http://s.io"),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(cmd) =
            php("php_generated_values_round_trip_byte_for_byte_and_move_as_php_expects")
        else {
            return;
        };
        let rw = UrlRewrite::new(from, to).unwrap();
        let lines = run(
            cmd,
            "generate.php",
            &[&(seed + 1).to_string(), &CASES.to_string(), from, to],
            "",
        );
        let (map, values) = lines.split_first().expect("a map line");
        let mut moved = 0;
        let mut oracle_input = String::new();
        for line in values {
            let bytes = unb64(line);
            let value = parse(&bytes)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
            assert_eq!(value.to_bytes(), bytes, "round trip");
            let got = match rw.apply(&bytes) {
                Some(got) => {
                    moved += 1;
                    got
                }
                None => bytes.clone(),
            };
            oracle_input.push_str(&format!("{line} {} {map}\n", b64(&got)));
        }
        assert!(
            moved > CASES / 4,
            "only {moved} of {CASES} values held a URL"
        );
        let verdicts = run(php("").unwrap(), "oracle.php", &[], &oracle_input);
        assert_all_ok(&verdicts, CASES);
    }
}

#[test]
fn generated_values_moved_here_unserialize_in_php_as_expected() {
    const CASES: usize = 64;
    let Some(cmd) = php("generated_values_moved_here_unserialize_in_php_as_expected") else {
        return;
    };
    let sites = testgen::sites();
    let mut runner = TestRunner::new(Config::default());
    let strategy = (0..sites.len(), testgen::node());
    let mut input = String::new();
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let (site, node) = strategy.new_tree(&mut runner).unwrap().current();
        let site = &sites[site];
        let before = node.value(site, false).to_bytes();
        let want = node.value(site, true).to_bytes();
        let got = site
            .rewrite()
            .apply(&before)
            .unwrap_or_else(|| before.clone());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{node:?}"
        );
        let map = php_map(
            site.forms
                .iter()
                .map(|(from, to, _)| (from.clone(), to.clone()))
                .chain(site.near_misses.iter().map(|n| (n.clone(), n.clone()))),
        );
        input.push_str(&format!("{} {} {}\n", b64(&before), b64(&got), b64(&map)));
        cases.push(node);
    }
    let verdicts = run(cmd, "oracle.php", &[], &input);
    for (verdict, node) in verdicts.iter().zip(&cases) {
        assert_eq!(verdict, "ok", "{node:?}");
    }
    assert_eq!(verdicts.len(), CASES);
}

#[test]
fn floats_are_written_by_php_as_the_generators_expect() {
    let Some(cmd) = php("floats_are_written_by_php_as_the_generators_expect") else {
        return;
    };
    let mut runner = TestRunner::new(Config::default());
    let floats: Vec<f64> = (0..200)
        .map(|_| {
            proptest::num::f64::ANY
                .new_tree(&mut runner)
                .unwrap()
                .current()
        })
        .chain([
            0.1,
            1e15,
            1e16,
            1e17,
            1e-4,
            1e-5,
            5e-324,
            -0.0,
            0.0,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
        ])
        .collect();
    let input: String = floats
        .iter()
        .map(|x| format!("{:016x}\n", x.to_bits()))
        .collect();
    // PHP reads the bits back into a float and serializes it.
    let mut cmd = cmd;
    cmd.arg("-r").arg(
        r#"while (($l = fgets(STDIN)) !== false) { echo serialize(unpack('E', hex2bin(trim($l)))[1]), "\n"; }"#,
    );
    let out = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .expect("php runs");
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), floats.len());
    for (x, line) in floats.iter().zip(&lines) {
        assert!(parse(line.as_bytes()).is_ok());
        if testgen::needs_17_digits(*x) {
            // The last of 17 digits is not unique: PHP's text must read back to the float.
            let text = line.trim_start_matches("d:").trim_end_matches(';');
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                x.to_bits(),
                "{x:e}: {line}"
            );
            continue;
        }
        assert_eq!(
            format!("d:{};", testgen::php_float_text(*x)),
            *line,
            "{x:e}"
        );
    }
}
