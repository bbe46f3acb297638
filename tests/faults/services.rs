//! Private instances of the backing services, on free loopback ports and
//! in temporary directories, for tests that stop and start them. Each is
//! stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use paygate::config::DatabaseUrls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The most any service may take to come up or go down.
const START_WITHIN: Duration = Duration::from_secs(90);

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `ready` every 50 ms until it holds; how long that took. Panics
/// after `within`, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut ready: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Runs a command to its end; panics with its output if it failed.
async fn run(command: &mut Command) {
    let output = command.output().await.expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sends SIGTERM (a clean stop, as a service manager would).
async fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
}

/// A Redis server of its own, saving nothing.
pub struct PrivateRedis {
    pub port: u16,
    server: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            server: None,
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port again (empty, as after a crash without
    /// persistence) and waits until it answers.
    pub async fn resume(&mut self) {
        let port = self.port.to_string();
        let server = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no", "--dir", "/tmp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs");
        self.server = Some(server);
        wait_until("private Redis answering", START_WITHIN, || {
            redis_answers(self.port)
        })
        .await;
    }

    /// Kills the server at once, as a crash or an OOM kill would.
    pub async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill().await;
        }
    }
}

async fn redis_answers(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream.read_exact(&mut reply).await.is_ok()
        && &reply == b"+PONG\r\n"
}

/// A PostgreSQL cluster of its own (trust authentication, user
/// `postgres`). initdb refuses root, so as root its commands run as the
/// `postgres` user.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("paygate-pg-")
            .tempdir()
            .expect("a temporary directory");
        let as_root = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").expect("/proc/self"),
        ) == 0;
        if as_root {
            run(Command::new("chown").arg("postgres:").arg(dir.path())).await;
        }
        let cluster = Self {
            port: free_port(),
            dir,
            bin: postgres_bin(),
            as_root,
        };
        let data = cluster.data();
        run(cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data))
        .await;
        cluster.resume().await;
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server's programs, as the user that owns the cluster.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// The four databases of a host, named `paygate_<name>` here.
    pub fn urls(&self) -> DatabaseUrls {
        let url =
            |name: &str| format!("postgres://postgres@127.0.0.1:{}/paygate_{name}", self.port);
        DatabaseUrls {
            payments: url("payments"),
            merchants: url("merchants"),
            providers: url("providers"),
            logs: url("logs"),
        }
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options]))
        .await;
    }

    /// Stops the server the way an operator's restart does: sessions are
    /// cut, open transactions roll back.
    pub async fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data()))
        .await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_root {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        let _ = command
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest installed server's programs (Debian keeps them out of PATH).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("a PostgreSQL server in /usr/lib/postgresql/<version>/bin")
}

/// A RabbitMQ node of its own: own name, ports, database, logs and
/// cookie, no plugins.
pub struct PrivateRabbit {
    pub port: u16,
    dir: tempfile::TempDir,
    dist_port: u16,
    node: Option<Child>,
}

impl PrivateRabbit {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("paygate-rabbit-")
            .tempdir()
            .expect("a temporary directory");
        let port = free_port();
        write(
            dir.path(),
            "rabbitmq.conf",
            &format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        );
        write(dir.path(), "enabled_plugins", "[].\n");
        write(dir.path(), "rabbitmq-env.conf", "");
        let mut rabbit = Self {
            port,
            dir,
            dist_port: free_port(),
            node: None,
        };
        rabbit.resume().await;
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node on its database again; how long until it served.
    pub async fn resume(&mut self) -> Duration {
        let dir = self.dir.path();
        // Debian's /usr/sbin wrapper switches to the rabbitmq user and drops
        // the environment; the script it wraps runs the node as we are.
        let script = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let script = if script.exists() {
            script.as_os_str()
        } else {
            "rabbitmq-server".as_ref()
        };
        let log = std::fs::File::create(dir.join("console.log")).expect("console log");
        let node = Command::new(script)
            .current_dir(dir)
            .env("HOME", dir)
            .env(
                "RABBITMQ_NODENAME",
                format!(
                    "paygate-fault-{}-{}@localhost",
                    std::process::id(),
                    self.port
                ),
            )
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", dir.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("console log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("rabbitmq-server runs");
        self.node = Some(node);
        let url = self.url();
        wait_until("private RabbitMQ accepting AMQP", START_WITHIN, || {
            let url = url.clone();
            async move {
                match paygate::outbox::connect(&url, "paygate fault test probe").await {
                    Ok(connection) => {
                        let _ = connection.close(200, "probe".into()).await;
                        true
                    }
                    Err(_) => false,
                }
            }
        })
        .await
    }

    /// Stops the node cleanly, as `rabbitmqctl stop` or a service manager
    /// would.
    pub async fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            if let Some(pid) = node.id() {
                // The script passes SIGTERM on to the VM and waits for it.
                terminate(pid).await;
            }
            let stopped = tokio::time::timeout(START_WITHIN, node.wait()).await;
            assert!(stopped.is_ok(), "the private RabbitMQ did not stop");
        }
    }

    /// Kills the node's VM at once, as a crash would.
    pub async fn kill(&mut self) {
        self.kill_vm();
        if let Some(mut node) = self.node.take() {
            let _ = node.kill().await;
        }
    }

    fn kill_vm(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("node.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if self.node.is_some() {
            self.kill_vm();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("writing a service's file");
}
