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

/// A CA of its own and a server certificate it signed for `localhost` and
/// 127.0.0.1, made with `openssl` for one test: the private services serve
/// TLS with it, and the host trusts the CA through `PAYGATE_TLS_CA_FILE`.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    pub async fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("paygate-pki-")
            .tempdir()
            .expect("a temporary directory");
        let path = |name: &str| dir.path().join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=paygate test CA"])
            .args(ec)
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(path("ca.key"))
            .arg("-out")
            .arg(path("ca.crt")))
        .await;
        run(Command::new("openssl")
            .args(["req", "-subj", "/CN=localhost"])
            .args(ec)
            .arg("-keyout")
            .arg(path("server.key"))
            .arg("-out")
            .arg(path("server.csr")))
        .await;
        write(
            dir.path(),
            "server.ext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(path("server.csr"))
            .arg("-CA")
            .arg(path("ca.crt"))
            .arg("-CAkey")
            .arg(path("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(path("server.ext"))
            .arg("-out")
            .arg(path("server.crt")))
        .await;
        Self { dir }
    }

    /// The CA's certificate (PEM): what `PAYGATE_TLS_CA_FILE` names.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The server's certificate and its key (PEM).
    pub fn server_files(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.crt"),
            self.dir.path().join("server.key"),
        )
    }
}

/// A Redis server of its own, saving nothing.
pub struct PrivateRedis {
    pub port: u16,
    server: Option<Child>,
    /// The certificate and key it serves TLS with, and only TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that speaks only TLS, with `pki`'s server certificate.
    pub async fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some(pki.server_files())).await
    }

    async fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Self {
        let mut redis = Self {
            port: free_port(),
            server: None,
            tls,
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port again (empty, as after a crash without
    /// persistence) and waits until it answers.
    pub async fn resume(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        let server = command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no", "--dir", "/tmp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs");
        self.server = Some(server);
        let (tls, port) = (self.tls.is_some(), self.port);
        wait_until("private Redis answering", START_WITHIN, || async move {
            if tls {
                listening(port).await
            } else {
                redis_answers(port).await
            }
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

async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
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
    /// Serves only TLS, and its URLs ask for `sslmode=verify-full`.
    tls: bool,
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A cluster that accepts only TLS connections, with `pki`'s server
    /// certificate.
    pub async fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some(pki)).await
    }

    async fn start_with(pki: Option<&TestPki>) -> Self {
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
            tls: pki.is_some(),
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
        if let Some(pki) = pki {
            cluster.serve_only_tls(pki).await;
        }
        cluster.resume().await;
        cluster
    }

    /// Gives the cluster `pki`'s certificate, turns TLS on and lets only
    /// TLS connections in.
    async fn serve_only_tls(&self, pki: &TestPki) {
        let data = self.data();
        let (cert, key) = pki.server_files();
        std::fs::copy(cert, data.join("server.crt")).expect("copying the certificate");
        std::fs::copy(key, data.join("server.key")).expect("copying the key");
        write(
            &data,
            "pg_hba.conf",
            "hostssl all all 127.0.0.1/32 trust\nlocal all all trust\n",
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut conf| {
                std::io::Write::write_all(
                    &mut conf,
                    b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                )
            })
            .expect("turning TLS on");
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("the key's mode");
        if self.as_root {
            run(Command::new("chown")
                .arg("postgres:")
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .arg(data.join("pg_hba.conf")))
            .await;
        }
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
        let mode = if self.tls { "?sslmode=verify-full" } else { "" };
        let url = |name: &str| {
            format!(
                "postgres://postgres@127.0.0.1:{}/paygate_{name}{mode}",
                self.port
            )
        };
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
    /// Where it serves AMQP (over TLS with `start_tls`).
    pub port: u16,
    /// Its plain AMQP listener: `port`, or one no client is given with TLS.
    tcp_port: u16,
    dir: tempfile::TempDir,
    dist_port: u16,
    node: Option<Child>,
    /// The CA its clients trust: the system's, or a test PKI's.
    ca: paygate::tls::TrustedCa,
}

impl PrivateRabbit {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A node whose clients reach it over TLS only, with `pki`'s server
    /// certificate; its plain listener is on another port no one is told.
    pub async fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some(pki)).await
    }

    async fn start_with(pki: Option<&TestPki>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("paygate-rabbit-")
            .tempdir()
            .expect("a temporary directory");
        let port = free_port();
        let (tcp_port, ca) = match pki {
            None => (port, paygate::tls::TrustedCa::default()),
            Some(pki) => {
                let pem = std::fs::read(pki.ca_file()).expect("the CA");
                (free_port(), paygate::tls::TrustedCa::from_pem(&pem))
            }
        };
        let mut conf = format!("listeners.tcp.local = 127.0.0.1:{tcp_port}\n");
        if let Some(pki) = pki {
            let (cert, key) = pki.server_files();
            conf += &format!(
                "listeners.ssl.local = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                pki.ca_file().display(),
                cert.display(),
                key.display()
            );
        }
        write(dir.path(), "rabbitmq.conf", &conf);
        write(dir.path(), "enabled_plugins", "[].\n");
        write(dir.path(), "rabbitmq-env.conf", "");
        let mut rabbit = Self {
            port,
            tcp_port,
            dir,
            dist_port: free_port(),
            node: None,
            ca,
        };
        rabbit.resume().await;
        rabbit
    }

    pub fn url(&self) -> String {
        let scheme = if self.tcp_port == self.port {
            "amqp"
        } else {
            "amqps"
        };
        format!("{scheme}://guest:guest@127.0.0.1:{}/%2f", self.port)
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
            .env("RABBITMQ_NODE_PORT", self.tcp_port.to_string())
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
        let broker = paygate::outbox::Broker {
            url: self.url(),
            ca: self.ca.clone(),
        };
        wait_until("private RabbitMQ accepting AMQP", START_WITHIN, || {
            let broker = broker.clone();
            async move {
                match paygate::outbox::connect(&broker, "paygate fault test probe").await {
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
