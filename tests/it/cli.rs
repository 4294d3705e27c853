//! `ktable serve` refuses settings it cannot honour before touching Kafka.

use std::process::Command;

fn serve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ktable"))
        .arg("serve")
        .args(args)
        .env_remove("KTABLE_BROKERS")
        .env_remove("KTABLE_CONFIG")
        .output()
        .expect("the ktable binary runs")
}

fn log_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn real_brokers_need_users_to_authenticate() {
    let output = serve(&["--brokers", "127.0.0.1:1"]);
    assert!(!output.status.success());
    assert!(
        log_of(&output).contains("configure users"),
        "{}",
        log_of(&output)
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_by_name() {
    let path = std::env::temp_dir().join(format!("ktable-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "brokers = \"127.0.0.1:1\"\nlisten_address = \"0.0.0.0:5433\"\n",
    )
    .expect("write");
    let output = serve(&["--config", path.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success());
    assert!(
        log_of(&output).contains("listen_address"),
        "{}",
        log_of(&output)
    );
}

#[test]
fn flags_and_variables_win_over_the_config_file() {
    // The file listens on loopback, which the embedded demo may do without users; a
    // flag or variable saying 0.0.0.0 must win and be refused for lack of users.
    let path = std::env::temp_dir().join(format!("ktable-cli-flag-{}.toml", std::process::id()));
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\n").expect("write");
    let config = path.to_str().expect("utf-8 path");
    let by_flag = serve(&["--config", config, "--listen", "0.0.0.0:0"]);
    let by_variable = Command::new(env!("CARGO_BIN_EXE_ktable"))
        .args(["serve", "--config", config])
        .env("KTABLE_LISTEN", "0.0.0.0:0")
        .env_remove("KTABLE_BROKERS")
        .output()
        .expect("the ktable binary runs");
    let _ = std::fs::remove_file(&path);
    for output in [by_flag, by_variable] {
        assert!(!output.status.success());
        assert!(
            log_of(&output).contains("only listens on loopback"),
            "{}",
            log_of(&output)
        );
    }
}

/// A demo process, killed when the test ends, also when it fails (a panic would
/// otherwise leave it running, its generator taking a core from whatever runs next).
struct DemoProcess(std::process::Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for DemoProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for DemoProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Starts the embedded demo with `args`; its log lines (stdout) arrive on the receiver.
fn spawn_demo(args: &[&str]) -> (DemoProcess, std::sync::mpsc::Receiver<String>) {
    spawn_demo_in(std::path::Path::new("."), args)
}

/// Starts the embedded demo in the working directory `dir`.
fn spawn_demo_in(
    dir: &std::path::Path,
    args: &[&str],
) -> (DemoProcess, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ktable"))
        .current_dir(dir)
        .arg("serve")
        .args(args)
        .env_remove("KTABLE_BROKERS")
        .env_remove("KTABLE_CONFIG")
        .env_remove("KTABLE_HTTP")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the ktable binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (DemoProcess(child), seen)
}

/// Reads log lines until one contains `marker`; the log so far, and whether it came.
fn wait_for_line(
    seen: &std::sync::mpsc::Receiver<String>,
    marker: &str,
) -> (String, Option<String>) {
    let mut log = String::new();
    while let Ok(line) = seen.recv_timeout(std::time::Duration::from_secs(60)) {
        log.push_str(&line);
        log.push('\n');
        if line.contains(marker) {
            return (log, Some(line));
        }
    }
    (log, None)
}

/// The embedded demo serves /metrics and says where beside the psql hint. (Its
/// default, 127.0.0.1:9187, may be taken on a shared machine: the test asks for a
/// free port, and reads the one printed.)
#[test]
fn the_demo_prints_and_serves_its_metrics_url() {
    use std::io::{Read, Write};
    let (mut child, seen) = spawn_demo(&["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let prefix = "metrics at http://";
    let (log, line) = wait_for_line(&seen, prefix);
    let printed = line.and_then(|line| {
        line.split_once(prefix)
            .and_then(|(_, rest)| rest.split_once("/metrics"))
            .map(|(address, _)| address.to_string())
    });
    let health = printed.as_ref().map(|address| {
        let mut socket = std::net::TcpStream::connect(address.as_str()).expect("connect");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: ktable\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).expect("read");
        answer
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed.is_some(), "no metrics URL printed:\n{log}");
    let health = health.unwrap_or_default();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// A second demo on a machine whose 9187 is taken (another demo, another exporter)
/// still serves SQL: the metrics address is the demo's default, not a request.
#[test]
fn the_demo_serves_without_metrics_when_their_port_is_taken() {
    // Taken by this test, or already by someone else: either way the demo cannot have it.
    let _holder = std::net::TcpListener::bind("127.0.0.1:9187");
    let (mut child, seen) = spawn_demo(&["--listen", "127.0.0.1:0"]);
    let (log, line) = wait_for_line(&seen, "Connect with");
    let alive = child.try_wait().expect("child status").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.is_some() && alive, "the demo did not come up:\n{log}");
    assert!(log.contains("metrics endpoint is off"), "{log}");
}

/// The port of the server the "Connect with" line names (never 0: the one it got).
fn printed_port(line: Option<&str>) -> Option<u16> {
    let digits = line?.split_once("port=")?.1;
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse::<u16>().ok().filter(|&port| port != 0)
}

/// A client of the demo on `port`, connecting until it answers (the line comes once
/// the server listens) or `deadline` passes.
async fn connect_to_demo(
    port: u16,
    deadline: std::time::Instant,
) -> Result<tokio_postgres::Client, String> {
    let address = format!("host=127.0.0.1 port={port} user=ktable dbname=ktable");
    loop {
        match tokio_postgres::connect(&address, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return Ok(client);
            }
            Err(e) if std::time::Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// The demo needs no checkout: started where there is no `sql` folder (an installed
/// binary, a container), it declares its sources from the DDL built into it.
#[test]
fn the_demo_runs_outside_a_checkout() {
    let dir = std::env::temp_dir().join(format!("ktable-cli-nosql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (mut child, seen) =
        spawn_demo_in(&dir, &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let (log, line) = wait_for_line(&seen, "Connect with");
    let counted = printed_port(line.as_deref()).map(|port| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let client = connect_to_demo(port, deadline).await?;
            loop {
                let count = client
                    .query_one("SELECT count(*) FROM users", &[])
                    .await
                    .map(|row| row.get::<_, i64>(0))
                    .map_err(|e| e.to_string())?;
                if count > 0 || std::time::Instant::now() > deadline {
                    return Ok::<_, String>(count);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(counted, Some(Ok(count)) if count > 0),
        "no users served: {counted:?}\n{log}"
    );
    assert!(log.contains("declaring the demo's sources"), "{log}");
}

/// The demo's Avro table: records in Confluent's wire format, schemas from the
/// registry inside the process, columns taken from it (the key's `sku`, the value's
/// enum, decimal, timestamp and array), every product loaded.
#[test]
fn the_demo_serves_its_avro_products_table() {
    // Port 0: the psql line the demo prints names the port the system gave it.
    let (mut child, seen) = spawn_demo(&["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let (log, line) = wait_for_line(&seen, "Connect with");
    let checked = printed_port(line.as_deref()).map(|port| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let client = connect_to_demo(port, deadline).await?;
            let count = loop {
                let count = client
                    .query_one("SELECT count(*) FROM products", &[])
                    .await
                    .map(|row| row.get::<_, i64>(0));
                if count.as_ref().is_ok_and(|n| *n == 200) || std::time::Instant::now() > deadline {
                    break count.map_err(|e| e.to_string())?;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            assert_eq!(count, 200, "every product");
            let row = client
                .query_one(
                    "SELECT sku, name, category, price::text, stock, updated_at IS NOT NULL, \
                     tags FROM products WHERE sku = 'sku-0007'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
                row.get::<_, i32>(4),
                row.get::<_, bool>(5),
                row.get::<_, String>(6),
            ))
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    let Some(Ok((sku, name, category, price, stock, updated, tags))) = checked else {
        panic!("the products table did not load: {checked:?}\n{log}");
    };
    assert_eq!((sku.as_str(), name.as_str()), ("sku-0007", "Product 7"));
    assert_eq!(category, "TOOLS");
    assert!(
        price
            .split_once('.')
            .is_some_and(|(_, cents)| cents.len() == 2),
        "{price}"
    );
    assert!((0..500).contains(&stock) && updated, "{stock} {updated}");
    assert!(tags.starts_with("[\"tools\""), "{tags}");
}
